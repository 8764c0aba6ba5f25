"""`ledgformer demo`: the README's main job (what `make demo` runs), a thin wrapper of train.demo."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  ledgformer demo                                   # full demo, writes runs/demo/
  ledgformer demo --out runs/demo-s1 seed=1         # config overrides as key=value
  ledgformer demo --model pytorchcv:mobilenetv2b_w1 # predict and measure another network
  ledgformer demo --baselines flops,gbdt            # compare with GBDT too
  ledgformer demo train.epochs=2 data.max_graphs=120 --no-measure   # a quick look"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train LeDG-Former on the embedded data (one family held out), compare with FLOPs, "
        "then predict and measure a network on this machine",
        description="On the embedded latency data set (family variants x 3 CPU platforms), train LeDG-Former "
        "with one model family held out (configs/demo-embedded.yaml: ResNet), fit the FLOPs baseline on the "
        "same split, print MAPE and Acc(10%%) on the held-out family per platform, save metrics.json and "
        "scatter plots, then predict a real network's latency on this machine and measure it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--config", default=None, help="config YAML (default configs/demo-embedded.yaml)")
    p.add_argument("--model", default="pytorchcv:resnet18",
                   help="network to predict and measure here (zoo name or .onnx; default pytorchcv:resnet18)")
    p.add_argument("--repeat", type=int, default=30, help="timed runs per platform (default 30)")
    p.add_argument("--baselines", default="flops",
                   help="comma-separated baselines fitted on the same split: flops, gbdt (default flops)")
    p.add_argument("--no-measure", action="store_true", help="skip predicting and measuring on this machine")
    p.add_argument("overrides", nargs="*", help="config key=value overrides, e.g. seed=1 train.epochs=10")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from ledgformer.train.demo import run_demo

    # the demo draws its own progress; transformers' per-load "Loading weights" bars would interleave
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    run_demo(args.out, args.config, args.overrides, model_spec=None if args.no_measure else args.model,
             repeat=args.repeat, baselines=baselines)
    return 0
