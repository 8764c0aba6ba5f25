"""`ledgformer train | evaluate | finetune`: run configs, re-evaluate and few-shot adapt checkpoints."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from ledgformer.errors import LedgformerError
from ledgformer.train.config import FINETUNE_PARAMS

TRAIN_EPILOG = """examples:
  ledgformer train --config configs/nb201-acc-781.yaml seed=0 out=runs/nb201-s0
  ledgformer train --config configs/help-nb201-zeroshot.yaml seed=1 model.d_model=32
  torchrun --nproc-per-node 2 -m ledgformer.cli.main train --config configs/nb201-acc-781.yaml"""
EVAL_EPILOG = """example:
  ledgformer evaluate runs/nb201-s0/model.pt --out runs/nb201-s0/re-eval"""
FT_EPILOG = """examples:
  ledgformer finetune runs/help-s0/model.pt --device help/eyeriss --shots 10
  ledgformer finetune latency-all --device my-board.yaml --measured my-board.csv --out runs/my-board

With --measured, the networks you measured on your device: a CSV with the columns model (an ONNX
file, relative to the CSV's folder or absolute, a zoo name such as pytorchcv:resnet18, or an
NB201 arch string) and latency_ms. The checkpoint (or shipped predictor) is adapted to the card
with its config's K-shot recipe and written to OUT/model.pt; then
  ledgformer predict net.onnx --hardware my-board.yaml --predictor runs/my-board/model.pt"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train", help="train a predictor from a YAML config (+ key=value overrides)",
                       description="Train, select on the validation split, evaluate on test, and write "
                       "metrics.json, the resolved config, the split, plots and model.pt to the run folder.",
                       epilog=TRAIN_EPILOG, formatter_class=fmt)
    p.add_argument("--config", required=True, help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seed=1 train.epochs=50")
    p.set_defaults(func=run_train)

    e = sub.add_parser("evaluate", help="re-evaluate a checkpoint on its task's valid/test splits",
                       epilog=EVAL_EPILOG, formatter_class=fmt)
    e.add_argument("checkpoint")
    e.add_argument("--out", default=None, help="folder for metrics.json (default: print only)")
    e.add_argument("--data-root", default=None)
    e.set_defaults(func=run_evaluate)

    f = sub.add_parser("finetune", help="adapt a latency checkpoint to a device from K measured samples",
                       description="Few-shot: draw K archs of the device from HELP's sample pool, fine-tune "
                       "on them, and report Spearman/MAPE on the device's 800-arch evaluation set "
                       "(K=0: zero-shot); or, with --measured, adapt to your own device from the "
                       "networks you measured on it.", epilog=FT_EPILOG, formatter_class=fmt)
    f.add_argument("checkpoint", help="model.pt, or with --measured also a shipped predictor name")
    f.add_argument("--device", required=True,
                   help="hardware card: name (e.g. help/eyeriss) or, with --measured, also a card YAML file")
    f.add_argument("--measured", default=None, metavar="CSV",
                   help="your measurements (columns model, latency_ms) instead of HELP's sample pool")
    f.add_argument("--shots", type=int, default=None, help="HELP samples K (default 10; not with --measured)")
    f.add_argument("--steps", type=int, default=None,
                   help="fine-tuning steps (default: the checkpoint config's finetune.steps)")
    f.add_argument("--lr", type=float, default=None, help="(default: the checkpoint config's finetune.lr)")
    f.add_argument("--params", default=None, choices=FINETUNE_PARAMS, nargs="+",
                   help="what is trained: all weights, readout (card token + heads), roofline (its "
                   "throughputs), scale (log-latency scale + shift: keeps the ranking exactly; use "
                   "--lr 0.05 --keep 0), reference (no weight moves: a fitted mix of the predictions "
                   "on the training devices' cards and the device's own; use --keep 0); several "
                   "values: the K samples choose one (with --keep's values) by cross-validation "
                   "(default: the checkpoint config's finetune.params)")
    f.add_argument("--keep", type=float, nargs="+", default=None,
                   help="share of the zero-shot weights kept, 0 <= keep < 1; several values: the K "
                   "samples choose one by cross-validation (default: the checkpoint config's finetune.keep)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default=None, help="folder for metrics.json and the adapted model.pt")
    f.add_argument("--data-root", default=None)
    f.set_defaults(func=run_finetune)


def _print(metrics: dict) -> None:
    keys = [k for k in metrics if k.endswith(("kendall_tau", "spearman", "mape")) and ".per_device." not in k]
    print(json.dumps({k: round(float(metrics[k]), 4) for k in keys if metrics[k] is not None}, indent=1))


def run_train(args: argparse.Namespace) -> int:
    from ledgformer.train.config import load_config
    from ledgformer.train.experiment import run_experiment

    cfg = load_config(args.config, args.overrides)
    metrics = run_experiment(cfg)
    _print(metrics)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ledgformer.train.finetune import evaluate_checkpoint
    from ledgformer.train.report import write_metrics_json

    metrics = evaluate_checkpoint(args.checkpoint, data_root=args.data_root)
    if args.out:
        write_metrics_json(metrics, Path(args.out) / "metrics.json")
    _print(metrics)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from ledgformer.train.finetune import finetune_checkpoint

    if args.measured:
        return _adapt_measured(args)
    shots = 10 if args.shots is None else args.shots
    if shots < 0:
        raise LedgformerError(f"--shots must be >= 0, got {shots}")
    metrics = finetune_checkpoint(args.checkpoint, args.device, shots, steps=args.steps, lr=args.lr,
                                  params=args.params, keep=args.keep, seed=args.seed, out=args.out,
                                  data_root=args.data_root)
    print(json.dumps({k: v if isinstance(v, str) else round(float(v), 4)
                      for k, v in metrics.items() if v is not None}, indent=1))
    return 0


def read_measurements(path: Path) -> tuple[list[str], list[float]]:
    """(models, latencies in ms) of a ``model,latency_ms`` CSV; a model file named relative to the
    CSV's folder is resolved there. Every bad row is reported by its line number."""
    if not path.is_file():
        raise LedgformerError(f"--measured {path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"model", "latency_ms"} - set(reader.fieldnames or [])
        if missing:
            raise LedgformerError(f"--measured {path}: needs the columns model and latency_ms (missing "
                                  f"{', '.join(sorted(missing))}; header: {reader.fieldnames})")
        models, latencies, bad = [], [], []
        for row in reader:
            model, raw = (row.get("model") or "").strip(), (row.get("latency_ms") or "").strip()
            try:
                ms = float(raw)
            except ValueError:
                ms = float("nan")
            if not model or not math.isfinite(ms) or ms <= 0:
                bad.append(f"line {reader.line_num}: model {model!r}, latency_ms {raw!r}")
                continue
            local = path.parent / model
            models.append(str(local) if not Path(model).is_absolute() and local.is_file() else model)
            latencies.append(ms)
    if bad:
        raise LedgformerError(f"--measured {path}: every row needs a model and a positive latency_ms:\n  "
                              + "\n  ".join(bad))
    if len(models) < 2:
        raise LedgformerError(f"--measured {path}: needs at least 2 measured networks, has {len(models)}")
    return models, latencies


def _adapt_measured(args: argparse.Namespace) -> int:
    """``finetune --measured``: adapt a predictor to the user's device, save it, say how to use it."""
    import torch

    from ledgformer.api import Predictor
    from ledgformer.train.config import DEFAULTS, merge

    if args.shots is not None:
        raise LedgformerError("--shots draws from HELP's sample pool; with --measured, K is the CSV's rows")
    if not args.out:
        raise LedgformerError("--measured needs --out: the folder for the adapted model.pt")
    models, latencies = read_measurements(Path(args.measured))
    recipe = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("params", args.params),
                                ("keep", args.keep)) if v is not None}
    pred = Predictor.load(args.checkpoint)
    # the training's thread count, as the suites' K-shot runs use: with another count CPU reductions
    # split differently and the adapted weights differ from run to run in the 6th digit
    torch.set_num_threads(int(merge(DEFAULTS["train"], pred.config.get("train") or {})["threads"]))
    pred.adapt(models, latencies, args.device, seed=args.seed, **recipe)
    out = Path(args.out)
    pred.save(out / "model.pt")
    done = {k: v for k, v in pred.extra["adapted"].items() if k != "recipe"}
    (out / "adapted.json").write_text(json.dumps(pred.extra["adapted"], indent=1) + "\n")
    print(json.dumps(done, indent=1))
    print(f"adapted predictor: {out / 'model.pt'} (in-sample MAPE: the fit to your {done['n']} networks, "
          f"not the error on others)\n  ledgformer predict MODEL --hardware {args.device} "
          f"--predictor {out / 'model.pt'}")
    return 0
