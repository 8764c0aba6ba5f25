"""Per-setting device scale of the mobile ML benchmark: fit log latency = a_graph + b_setting.

Why: it shows how much of a held-out phone's error is a level the card cannot tell (e.g. the
Pixel 4's Cortex-A76 cores against the A75 cores of the training phones; README, Limits).
Run: python scripts/mobile_device_scale.py [--data-root DIR]   (prints b, median ms, residual, card fields)

It also fits the CPU settings' levels b from log(per-thread peak), log(threads), int8 and runtime,
leave-one-phone-out, and prints how far each held-out phone's levels are off: what the cards'
peak_tflops_fp32 (cores x FLOP/cycle of cards/cores.yaml x clock) can tell a simple model; then
again with the cards' share of in-order cores (in_order_cores / compute_units) as one more column.
``--fpc A53=4,A55=4,...`` (FP32 FLOP/cycle per core, keyed by a substring of the card's
microarchitecture) replaces the cards' figures with hypothetical ones.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from ledgformer.data.registry import load_benchmark
from ledgformer.hardware import load_card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--fpc", default=None, help="e.g. A53=4,A55=4,A75=8,A76=16,Mongoose=24,Hurricane=24")
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
        print(f"{c:40s} b={b[j]:6.2f} median={np.exp(np.nanmedian(y[:, j])):7.1f} ms "
              f"mean|resid|={np.nanmean(np.abs(res[:, j])):.3f} "
              f"clock={card.clock_ghz} units={card.compute_units} precision={card.precision} "
              f"{card.microarchitecture}")
    fpc = dict((k, float(v)) for k, v in (kv.split("=") for kv in args.fpc.split(","))) if args.fpc else None
    level_fit(cards, b, fpc, in_order=False)
    print("with the share of in-order cores:")
    level_fit(cards, b, fpc, in_order=True)


def level_fit(cards: list[str], b: np.ndarray, fpc: dict[str, float] | None, in_order: bool) -> None:
    """Leave-one-phone-out least squares of the CPU settings' b on per-core peaks (the cards'
    peak_tflops_fp32, or ``fpc`` x cores x clock) and, with ``in_order``, the in-order share."""
    rows, target, phone = [], [], []
    for c, level in zip(cards, b, strict=True):
        card = load_card(c)
        if card.threads is None:  # GPU settings
            continue
        if fpc is None:
            if card.peak_tflops_fp32 is None:
                raise SystemExit(f"card {c} has no peak_tflops_fp32 (a core missing from cards/cores.yaml)")
            peak = card.peak_tflops_fp32 * 1000
        else:
            peak = 0.0
            for n, core in re.findall(r"(\d+)x ([^+]+)", card.microarchitecture or ""):
                match = [v for k, v in fpc.items() if k in core]
                if not match:
                    raise SystemExit(f"--fpc has no key for core '{core.strip()}' of {c}")
                peak += int(n) * match[0]
            peak *= card.clock_ghz
        row = [1.0, -np.log(peak / card.threads), -np.log(card.threads), float(card.precision == "int8"),
               float("torch" in c)]
        if in_order:
            if card.in_order_cores is None:
                raise SystemExit(f"card {c} has no in_order_cores (a core missing from cards/cores.yaml)")
            row.append(card.in_order_cores / card.compute_units)
        rows.append(row)
        target.append(level)
        phone.append(c.split("/")[2].split("|")[0])
    x, y, ph = np.asarray(rows), np.asarray(target), np.asarray(phone)
    errs = []
    for p in sorted(set(phone)):
        w = np.linalg.lstsq(x[ph != p], y[ph != p], rcond=None)[0]
        err = 100 * np.mean(np.abs(np.exp(x[ph == p] @ w - y[ph == p]) - 1))
        errs.append(err)
        print(f"held out {p:10s} CPU-setting level off by {err:5.1f} % (mean |ratio - 1|)")
    print(f"mean over phones {np.mean(errs):.1f} %")


if __name__ == "__main__":
    main()
