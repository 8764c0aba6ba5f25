"""Does our synflow agree with NASLib's, and do a trained accuracy model's ranking errors follow it?

1. Over all 15,625 CIFAR-10 networks: the range and median of log1p synflow and how many score 0.
   On the CIFAR-10 archs of NASLib's zero-cost file: Spearman of our log1p synflow with NASLib's
   stored synflow, and of each with the 200-epoch validation accuracy.
2. For each RUN_DIR (an NB201 accuracy run with a holdout part, e.g. the nb201-acc-proxies
   study's plain "ledgformer" runs): Kendall tau of its predictions on the holdout, Spearman of
   the predictions and of the labels with synflow, and of the rank residual rank(y) - rank(pred)
   with synflow (near 0: the model's ranking errors carry no synflow information). Read-only.

    python scripts/proxy_check.py runs/studies/nb201-acc-proxies/N1563/ledgformer/seed0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr

from ledgformer.api import Predictor
from ledgformer.data.registry import load_benchmark
from ledgformer.data.root import resolve_data_root
from ledgformer.spaces.nb201 import all_arch_strings, naslib_to_str
from ledgformer.spaces.proxies import nb201_proxies


def naslib_agreement(root: Path) -> None:
    every = np.asarray(nb201_proxies(all_arch_strings()))[:, 0]
    live = every[every > 0]
    print(f"all {every.size} CIFAR-10 networks: log1p synflow {live.min():.1f}-{every.max():.1f} "
          f"(median {np.median(every):.1f}), {int((every == 0).sum())} score 0")
    zc = json.loads((root / "naslib" / "zc_nasbench201.json").read_text())["nasbench201"]["cifar10"]
    archs = [naslib_to_str(json.loads(k.replace("(", "[").replace(")", "]"))) for k in zc]
    ours = np.asarray(nb201_proxies(archs))[:, 0]
    theirs = np.asarray([v["synflow"] for v in zc.values()])
    acc = np.asarray([v["val_accuracy"] for v in zc.values()])
    print(f"NASLib zero-cost file, {len(archs)} CIFAR-10 archs: Spearman ours vs NASLib synflow "
          f"{spearmanr(ours, theirs)[0]:.3f}; with accuracy: ours {spearmanr(ours, acc)[0]:.3f}, "
          f"NASLib's {spearmanr(theirs, acc)[0]:.3f}")


def run_residuals(run_dir: Path, archs: list[str], recs: list) -> None:
    hold = json.loads((run_dir / "split.json").read_text())["holdout"]
    arch = [archs[int(recs[i].graph_id.rsplit("/", 1)[1])] for i in hold]
    y = np.asarray([recs[i].target for i in hold])
    pred = np.asarray(Predictor.load(run_dir / "model.pt").predict(arch))
    syn = np.asarray(nb201_proxies(arch))[:, 0]
    resid = rankdata(y) - rankdata(pred)
    print(f"{run_dir}: holdout tau {kendalltau(pred, y)[0]:.3f}; Spearman with synflow: prediction "
          f"{spearmanr(pred, syn)[0]:.3f}, label {spearmanr(y, syn)[0]:.3f}, rank residual "
          f"{spearmanr(resid, syn)[0]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", type=Path, nargs="*")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    root = resolve_data_root(args.data_root)
    naslib_agreement(root)
    if args.run_dirs:
        archs = all_arch_strings()
        recs = [r for r in load_benchmark("nb201-cifar10", args.data_root).records if r.kind == "accuracy"]
        for run in args.run_dirs:
            run_residuals(run, archs, recs)


if __name__ == "__main__":
    main()
