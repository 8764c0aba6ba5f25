"""Per-setting device scale of the mobile ML benchmark: fit log latency = a_graph + b_setting.

Why: it shows how much of a held-out phone's error is a level the card cannot tell (e.g. the
Pixel 4's Cortex-A76 cores against the A75 cores of the training phones; README, Limits).
Run: python scripts/mobile_device_scale.py [--data-root DIR]   (prints b, residual, card fields)
"""

from __future__ import annotations

import argparse

import numpy as np

from ledgformer.data.registry import load_benchmark
from ledgformer.hardware import load_card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    recs = load_benchmark("mobile-cnn", args.data_root).records
    graphs = sorted({r.graph_id for r in recs})
    cards = sorted({r.device for r in recs})
    gi, ci = {g: i for i, g in enumerate(graphs)}, {c: i for i, c in enumerate(cards)}
    y = np.full((len(graphs), len(cards)), np.nan)
    for r in recs:
        y[gi[r.graph_id], ci[r.device]] = np.log(r.target)
    a, b = np.nanmean(y, 1), np.zeros(len(cards))
    for _ in range(50):  # alternating least squares of the two-way additive model
        b = np.nanmean(y - a[:, None], 0)
        a = np.nanmean(y - b[None], 1)
    res = y - a[:, None] - b[None]
    for c in cards:
        card, j = load_card(c), ci[c]
        print(f"{c:40s} b={b[j]:6.2f} mean|resid|={np.nanmean(np.abs(res[:, j])):.3f} "
              f"clock={card.clock_ghz} units={card.compute_units} precision={card.precision} "
              f"{card.microarchitecture}")


if __name__ == "__main__":
    main()
