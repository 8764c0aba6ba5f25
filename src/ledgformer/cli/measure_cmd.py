"""`ledgformer measure MODEL`: time a model on this machine (median and spread of real runs)."""

from __future__ import annotations

import argparse
import json
import sys

from ledgformer.cli.inspect_cmd import parse_shape
from ledgformer.measure.detect import RUNTIMES

EPILOG = """examples:
  ledgformer measure pytorchcv:resnet18 --runtime onnxruntime --threads 1
  ledgformer measure model.onnx --runtime onnxruntime-noopt --input-shape 1,3,224,224
  ledgformer measure pytorchcv:mobilenetv2_w1 --runtime torch --batch 4 --repeat 50 --json

A measurement whose run times spread more than --max-spread (IQR / median) after the retries is
not reported: the command ends with exit code 2 and says the machine is busy."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure",
        help="measure a model's latency on this machine (ONNX Runtime or PyTorch)",
        description="Run a model (ONNX file or zoo name) on this machine and report the median latency, its "
        "inter-quartile range, the number of timed runs and the platform (this machine's hardware card + "
        "runtime + threads + precision).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="an .onnx path, or pytorchcv:NAME / timm:NAME / torchvision:NAME")
    p.add_argument("--runtime", choices=list(RUNTIMES), default="onnxruntime", help="default: onnxruntime")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="default: cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads the runtime may use (default 1)")
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    p.add_argument("--input-shape", default=None, help="input shape, e.g. 1,3,224,224")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--repeat", type=int, default=30, help="timed runs (default 30; doubled on each retry)")
    p.add_argument(
        "--max-spread", type=float, default=0.1, help="largest accepted IQR / median (default 0.1)"
    )
    p.add_argument("--retries", type=int, default=2, help="retries when the spread is too wide (default 2)")
    p.add_argument("--json", action="store_true", help="print the measurement (with all run times) as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ledgformer.measure import measure

    m = measure(
        args.model,
        runtime=args.runtime,
        threads=args.threads,
        batch_size=args.batch,
        input_shape=parse_shape(args.input_shape),
        warmup=args.warmup,
        repeat=args.repeat,
        max_rel_iqr=args.max_spread,
        retries=args.retries,
        device=args.device,
    )
    if args.json:
        sys.stdout.write(json.dumps(m.to_dict(), indent=1) + "\n")
        return 0
    load = "" if m.load_avg is None else f", load average {m.load_avg:.2f}"
    sys.stdout.write(
        f"model     {m.model} input {'x'.join(map(str, m.input_shape))}\n"
        f"platform  {m.platform}\n"
        f"          {m.card.to_text()}\n"
        f"latency   median {m.median_ms:.3f} ms, IQR {m.iqr_ms:.3f} ms ({100 * m.rel_iqr:.1f}%), "
        f"q1 {m.q1_ms:.3f} / q3 {m.q3_ms:.3f} ms\n"
        f"runs      {m.n_runs} timed after {m.warmup} warm-up (try {m.attempts}{load})\n"
    )
    return 0
