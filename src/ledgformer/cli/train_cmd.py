"""`ledgformer train | evaluate | finetune`: run configs, re-evaluate and few-shot adapt checkpoints."""

from __future__ import annotations

import argparse
import json

from ledgformer.errors import LedgformerError

TRAIN_EPILOG = """examples:
  ledgformer train --config configs/nb201-acc-781.yaml seed=0 out=runs/nb201-s0
  ledgformer train --config configs/help-nb201-zeroshot.yaml seed=1 model.d_model=32
  torchrun --nproc-per-node 2 -m ledgformer.cli.main train --config configs/nb201-acc-781.yaml"""
EVAL_EPILOG = """example:
  ledgformer evaluate runs/nb201-s0/model.pt --out runs/nb201-s0/re-eval"""
FT_EPILOG = """example:
  ledgformer finetune runs/help-s0/model.pt --device help/eyeriss --shots 10"""


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
                       "(K=0: zero-shot).", epilog=FT_EPILOG, formatter_class=fmt)
    f.add_argument("checkpoint")
    f.add_argument("--device", required=True, help="hardware card name, e.g. help/eyeriss")
    f.add_argument("--shots", type=int, default=10, help="measured samples K (default 10)")
    f.add_argument("--steps", type=int, default=None,
                   help="fine-tuning steps (default: the checkpoint config's finetune.steps)")
    f.add_argument("--lr", type=float, default=None, help="(default: the checkpoint config's finetune.lr)")
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
    from pathlib import Path

    from ledgformer.train.finetune import evaluate_checkpoint
    from ledgformer.train.report import write_metrics_json

    metrics = evaluate_checkpoint(args.checkpoint, data_root=args.data_root)
    if args.out:
        write_metrics_json(metrics, Path(args.out) / "metrics.json")
    _print(metrics)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from ledgformer.train.finetune import finetune_checkpoint

    if args.shots < 0:
        raise LedgformerError(f"--shots must be >= 0, got {args.shots}")
    metrics = finetune_checkpoint(args.checkpoint, args.device, args.shots, steps=args.steps, lr=args.lr,
                                  keep=args.keep, seed=args.seed, out=args.out, data_root=args.data_root)
    print(json.dumps({k: round(float(v), 4) for k, v in metrics.items() if v is not None}, indent=1))
    return 0
