"""Does averaging LeDG-Former members lift NAS-Bench-201 Kendall tau at large N? (README, Training.)

Builds the nb201-acc task once (the split of ``--seed``, as the suite's run of that seed), then
trains ``--members`` models on it that differ only in their init and batch order (member 0 uses
the suite's seed itself, so its tau is the suite's number) and prints each member's test tau and
the tau of the mean prediction of the first i members. The test part is every arch outside the N
labelled ones; no choice is made on it.

    python scripts/nb201_ensemble.py [--n 1563] [--members 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import kendalltau

from ledgformer.model.registry import create_model
from ledgformer.train.config import load_config
from ledgformer.train.tasks import build_task
from ledgformer.train.trainer import Trainer, model_kwargs, set_seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/nb201-acc-781.yaml")
    ap.add_argument("--n", type=int, default=1563, help="labelled archs (data.n_train)")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="the split's seed (the suite's seed)")
    args = ap.parse_args()
    cfg = load_config(args.config, [f"data.n_train={args.n}", f"seed={args.seed}", "train.progress=false"])
    set_seed(args.seed)
    data = build_task(cfg)
    torch.set_num_threads(int(cfg["train"]["threads"]))
    preds: list[np.ndarray] = []
    for i in range(args.members):
        seed = args.seed if i == 0 else 1000 * (i + 1) + args.seed
        set_seed(seed)
        name, kwargs = model_kwargs(cfg, data)
        trainer = Trainer(create_model(name, **kwargs), data, cfg["train"], seed=seed)
        t0 = time.time()
        trainer.fit()
        metrics, raw = trainer.evaluate()
        true, pred, _ = raw["test"]
        preds.append(np.asarray(pred))
        ens = kendalltau(true, np.mean(preds, axis=0)).statistic
        print(f"member {i} (seed {seed}): tau {metrics['test.kendall_tau']:.4f}; mean of {i + 1} "
              f"member(s): tau {ens:.4f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
