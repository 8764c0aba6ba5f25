"""Is a latency run's test error a level (every network too slow or too fast) or a ranking problem?

Rebuilds the run's task from its ``config.yaml`` (so its split), predicts the test part with its
``model.pt`` and prints per platform: the median of predicted / measured (1.0 = no bias), the
MAPE, the MAPE left after dividing out that median (what a known per-platform scale would leave)
and Spearman rho. Read-only: nothing is chosen with it.

    python scripts/signed_error.py runs/bench/nnlqp/nb201/ledgformer/seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ledgformer.train.checkpoint import load_checkpoint
from ledgformer.train.config import load_config
from ledgformer.train.metrics import mape, spearman
from ledgformer.train.tasks import build_task
from ledgformer.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    cfg = load_config(args.run_dir / "config.yaml", ["train.progress=false"])
    data = build_task(cfg)
    torch.set_num_threads(int(cfg["train"]["threads"]))
    model, _ = load_checkpoint(args.run_dir / "model.pt", encoder_id=data.encoder_id)
    idx = data.parts["test"]
    pred = Trainer(model, data, cfg["train"], seed=int(cfg["seed"])).predict(idx)
    true, groups = data.target[idx], np.asarray(data.group(idx))
    print(f"{'platform':<40} {'n':>5} {'median pred/true':>17} {'MAPE':>7} {'after scale':>12} {'rho':>6}")
    for g in [*np.unique(groups), None]:
        sel = groups == g if g is not None else np.ones(len(idx), bool)
        ratio = float(np.median(pred[sel] / true[sel]))
        print(f"{g or 'all':<40} {sel.sum():>5} {ratio:>17.2f} {mape(true[sel], pred[sel]):>6.1f}% "
              f"{mape(true[sel], pred[sel] / ratio):>11.1f}% {spearman(true[sel], pred[sel]):>6.3f}")


if __name__ == "__main__":
    main()
