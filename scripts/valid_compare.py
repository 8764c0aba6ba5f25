"""Score checkpoints on the validation part of one run config's split (which one to keep?).

Builds the task of ``--config`` (with its seed and overrides, hence its split) once and evaluates
each checkpoint on the ``valid`` part only: mean per-device Spearman rho, MAPE and Acc(10%). Used
to choose between two trainings of a shipped predictor without looking at its test part.

    python scripts/valid_compare.py --config configs/latency-all.yaml seed=0 --checkpoints OLD.pt NEW.pt
"""

from __future__ import annotations

import argparse

import torch

from ledgformer.train.checkpoint import load_checkpoint
from ledgformer.train.config import load_config
from ledgformer.train.tasks import build_task
from ledgformer.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. seed=0)")
    ap.add_argument("--checkpoints", nargs="+", required=True)
    args = ap.parse_args()
    cfg = load_config(args.config, [*args.overrides, "train.progress=false"])
    data = build_task(cfg)
    torch.set_num_threads(int(cfg["train"]["threads"]))
    for path in args.checkpoints:
        model, _ = load_checkpoint(path, encoder_id=data.encoder_id)
        metrics, _ = Trainer(model, data, cfg["train"], seed=int(cfg["seed"])).evaluate(("valid",))
        print(f"{path}: valid n {metrics['valid.n']}, mean per-device rho "
              f"{metrics['valid.mean_device_spearman']:.4f}, MAPE {metrics['valid.mape']:.2f} %, "
              f"Acc(10%) {metrics['valid.acc@10%']:.3f}", flush=True)


if __name__ == "__main__":
    main()
