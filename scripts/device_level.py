"""Median predicted / measured latency per device of a latency run: where a zero-shot error is a level.

Why: a held-out phone's MAPE mixes ranking and level; this shows, per setting, how far the
predicted level is off (1.0 = right on the median network). Used for the unseen-phone study
(README, Limits: configs/studies/mobile-cnn-valid-phone.yaml).
Run: python scripts/device_level.py RUN_DIR/model.pt [--part valid|test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ledgformer.train.checkpoint import read_checkpoint
from ledgformer.train.config import DEFAULTS, merge
from ledgformer.train.finetune import restore
from ledgformer.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="model.pt of a latency run (it carries the config)")
    ap.add_argument("--part", default="valid", choices=("valid", "test"))
    args = ap.parse_args()
    ckpt = read_checkpoint(args.checkpoint)
    cfg = merge(DEFAULTS, ckpt["config"])
    model, data = restore(ckpt, cfg, args.checkpoint)
    idx = data.parts[args.part]
    pred = Trainer(model, data, cfg["train"], seed=int(cfg["seed"])).predict(idx)
    ratio, groups = pred / data.target[idx], np.asarray(data.group(idx))
    print(f"| {args.part} device | median predicted / measured | networks |\n|---|---:|---:|")
    for g in sorted(set(groups.tolist())):
        print(f"| {g} | {np.median(ratio[groups == g]):.2f} | {int((groups == g).sum())} |")


if __name__ == "__main__":
    main()
