"""`ledgformer predict MODEL [--hardware CARD]`: a latency (ms) or accuracy (%) estimate, with context."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ledgformer.errors import LedgformerError

EPILOG = """examples:
  ledgformer predict model.onnx --hardware help/pixel3 --predictor runs/help-s0/model.pt
  ledgformer predict pytorchcv:resnet18 --hardware my-board.yaml --breakdown
  ledgformer predict net.onnx --hardware help/1080ti_32 --input-shape 1,3,320,320 --json
  ledgformer predict --predictor nb201-acc \\
      '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'

MODEL is an ONNX file, an IR JSON file (ledgformer inspect --json), pytorchcv:NAME / timm:NAME /
torchvision:NAME, or a NAS-Bench-201 arch string. With --hardware the default predictor is the
shipped latency predictor, without it the shipped accuracy predictor (`ledgformer models list`).
A latency answer also names the predictor's training platforms nearest to the card and the test
error the predictor measured on that kind of hardware."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict the latency of a model on a hardware card (or a NAS "
                       "cell's accuracy)", description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX / IR JSON file, pytorchcv:NAME, timm:NAME, or an NB201 arch string")
    p.add_argument("--hardware", default=None, metavar="CARD",
                   help="hardware card name (`ledgformer hardware list`) or card YAML file")
    p.add_argument("--predictor", default=None, metavar="NAME|PATH",
                   help="shipped predictor name (`ledgformer models list`) or a checkpoint (model.pt)")
    p.add_argument("--input-shape", default=None, help="input shape for ONNX / zoo models, e.g. 1,3,224,224")
    p.add_argument("--batch", type=int, default=None, help="override the batch size (ONNX / zoo models)")
    p.add_argument("--breakdown", action="store_true", help="per-node share of the predicted latency")
    p.add_argument("--top", type=int, default=10, help="nodes shown by --breakdown (default 10)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for the model (default 1: its small ops run fastest on one)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=run)


def answer(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command prints, as a JSON-ready dict."""
    from ledgformer.api import Predictor
    from ledgformer.api.shipped import default_predictor
    from ledgformer.cli.inspect_cmd import parse_shape

    if args.batch is not None and args.batch <= 0:
        raise LedgformerError(f"--batch must be a positive integer, got {args.batch}")
    if args.top <= 0:
        raise LedgformerError(f"--top must be a positive integer, got {args.top}")
    if args.threads <= 0:
        raise LedgformerError(f"--threads must be a positive integer, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    name = args.predictor or default_predictor("latency" if args.hardware else "accuracy", model=args.model)
    pred = Predictor.load(name)
    if args.breakdown and pred.task != "latency":
        raise LedgformerError(f"--breakdown needs a latency predictor; {pred.name} predicts {pred.task}")
    shape = parse_shape(args.input_shape)
    value = pred.predict(args.model, args.hardware, input_shape=shape, batch_size=args.batch)
    out: dict[str, Any] = {"model": args.model, "predictor": pred.name, "task": pred.task, "unit": pred.unit,
                           "estimate": value, "hardware": None}
    if pred.task == "latency":
        from ledgformer.api.inputs import resolve_card

        card = resolve_card(args.hardware)
        out["hardware"] = {"name": card.name, "text": card.to_text()}
        out["nearest_platforms"] = pred.nearest_platforms(card)
    out["test_error"] = pred.measured_error(args.hardware)
    if "adapted" in pred.extra:  # ledgformer finetune --measured / Predictor.adapt
        out["adapted"] = {k: pred.extra["adapted"][k] for k in ("hardware", "n")}
    if args.breakdown:
        rows = pred.breakdown(args.model, args.hardware, input_shape=shape, batch_size=args.batch)
        out["breakdown"] = rows[:args.top]
        out["breakdown_nodes"] = len(rows)
    return out


def _metrics_text(err: dict[str, Any]) -> str:
    names = {"mape": "MAPE {:.1f} %", "spearman": "Spearman {:.3f}", "kendall_tau": "Kendall tau {:.3f}",
             "rmse": "RMSE {:.2f}"}
    return ", ".join(names[k].format(v) for k, v in err["metrics"].items() if k in names)


def _print(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    unit = out["unit"]
    where = f" on {out['hardware']['name']}" if out["hardware"] else ""
    console.print(f"[bold]{out['estimate']:.4g} {unit}[/]  {out['task']} of {out['model']}{where}")
    console.print(f"predictor: {out['predictor']}")
    if out["hardware"]:
        console.print(f"card: {out['hardware']['text']}")
        near = out.get("nearest_platforms") or []
        listed = ", ".join(f"{p['card']} ({p['similarity']:.2f})" for p in near) or "unknown"
        console.print(f"nearest training platforms (cosine similarity): {listed}")
    if "adapted" in out:
        ad = out["adapted"]
        note = f" [yellow](not this card: the adapted weights serve {ad['hardware']})[/]" \
            if out["hardware"] and out["hardware"]["name"] != ad["hardware"] else ""
        console.print(f"adapted to {ad['hardware']} from {ad['n']} measured networks{note}")
    err = out.get("test_error")
    if err:
        console.print(f"measured test error ({err['scope']}): {_metrics_text(err) or 'n/a'}")
    else:
        console.print("measured test error: unknown (no metrics with this checkpoint)")
    if "breakdown" in out:
        table = Table(title=f"top {len(out['breakdown'])} of {out['breakdown_nodes']} nodes by share "
                      "of the predicted latency")
        for col in ("#", "node", "op", "description"):
            table.add_column(col)
        table.add_column("share", justify="right")
        table.add_column(f"≈ {unit}", justify="right")
        for r in out["breakdown"]:
            table.add_row(str(r["index"]), r["name"] or "-", r["op"], r["text"], f"{100 * r['share']:.1f} %",
                          f"{r['ms']:.3g}")
        console.print(table)


def run(args: argparse.Namespace) -> int:
    out = answer(args)
    if args.json:
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
    else:
        _print(out)
    return 0
