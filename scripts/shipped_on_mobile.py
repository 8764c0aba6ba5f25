"""MAPE of a shipped predictor on a seeded sample of mobile-cnn CPU-setting records.

Why: the shipped ``latency-all`` is trained on these phones' settings; when their cards change
(e.g. a peak added), this shows whether the checkpoint still fits the cards it now reads.
Run: python scripts/shipped_on_mobile.py [--predictor latency-all] [--n 400] [--data-root DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from ledgformer.api import Predictor
from ledgformer.data.registry import load_benchmark
from ledgformer.hardware import load_card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictor", default="latency-all")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    bench = load_benchmark("mobile-cnn", args.data_root)
    recs = [r for r in bench.records if load_card(r.device).threads is not None]
    pick = np.random.default_rng(0).choice(len(recs), min(args.n, len(recs)), replace=False)
    p = Predictor.load(args.predictor)
    errs = [abs(p.predict(bench.graphs[recs[i].graph_id], recs[i].device) - recs[i].target) / recs[i].target
            for i in pick]
    print(f"{args.predictor}: n={len(errs)} MAPE {100 * np.mean(errs):.1f} %, "
          f"median APE {100 * np.median(errs):.1f} %")


if __name__ == "__main__":
    main()
