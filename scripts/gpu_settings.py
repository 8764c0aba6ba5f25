"""Phone GPU settings vs CPU settings: the mean test MAPE of each bench row, split by unit.

Why: on the mobile ML benchmark a phone has 1-2 GPU settings among 9-38, and their errors are
the largest (their cards long stated no speed figure), so a suite's per-phone mean hides where
the error is. For each (setting, variant) of a ``ledgformer bench`` results file: the per-run
mean of ``test.per_device.*.mape`` over the GPU settings (``|gpu|`` in the card name) and over
the others, and of ``*.spearman`` over the GPU settings, averaged over seeds, with the row's
``test.mape``.

    python scripts/gpu_settings.py results/mobile-cnn.json [results/studies/mobile-cnn-gpu-peak.json ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

PREFIX = "test.per_device."


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def split_means(metrics: dict[str, float]) -> tuple[float, float, float]:
    """(mean MAPE over the GPU settings, over the other settings, mean Spearman over the GPU
    settings) of one run's metrics; nan where none."""
    def per(suffix: str) -> dict[str, float]:
        return {k[len(PREFIX):-len(suffix)]: v for k, v in metrics.items()
                if k.startswith(PREFIX) and k.endswith(suffix)}
    mape, rho = per(".mape"), per(".spearman")
    return (_mean([v for k, v in mape.items() if "|gpu|" in k]),
            _mean([v for k, v in mape.items() if "|gpu|" not in k]),
            _mean([v for k, v in rho.items() if "|gpu|" in k]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    args = ap.parse_args()
    for path in args.results:
        rows: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
        for run in json.loads(path.read_text())["runs"]:
            m = run["metrics"]
            if "test.mape" in m:
                rows[(run["variant"], run["setting"])].append((m["test.mape"], *split_means(m)))
        print(f"\n{path}\n\n| variant | setting | seeds | MAPE % | GPU settings | other settings | GPU rho |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for (variant, setting), vals in rows.items():
            mape, gpu, cpu, rho = np.mean(vals, axis=0)
            print(f"| {variant} | {setting} | {len(vals)} | {mape:.1f} | {gpu:.1f} | {cpu:.1f} | {rho:.3f} |")


if __name__ == "__main__":
    main()
