"""Does a rerun reproduce committed results? Compare two ``ledgformer bench`` result files run by run.

The issue's promise is that rerunning ``--quick`` reproduces the quick numbers within noise; this
checks it. Runs are matched by (setting, variant, seed); for each of the suite's metrics it prints
the committed value, the rerun's and the difference, and flags a difference beyond the tolerance
(MAPE-like metrics: relative, default 10 %; rank and accuracy metrics: absolute, default .01).
Runs whose resolved configs set a shared key differently are listed, not compared. With
``--spread FULL.json`` a difference within 2 seed standard deviations of the full suite's runs of
that setting and variant counts as noise too.

    ledgformer bench nb201-acc --quick --results-dir /tmp/rerun --runs-dir /tmp/rerun-runs
    python scripts/compare_results.py results/nb201-acc-quick.json /tmp/rerun/nb201-acc-quick.json \
      --spread results/nb201-acc.json

Exit status 0 when every compared run is within tolerance, 1 otherwise, 2 on unusable input or
when no run could be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ledgformer.train.bench import flatten_config
from ledgformer.train.bench_report import lower_is_better, summarise


class ResultsFileError(ValueError):
    """Input this check cannot use: says which file and why."""


def _runs(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str, int], dict[str, Any]]]:
    try:
        data = json.loads(path.read_text())
        return data, {(r["setting"], r["variant"], int(r["seed"])): r for r in data["runs"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ResultsFileError(f"{path}: not a ledgformer bench result file ({err})") from None


def _config_diff(x: dict[str, Any], y: dict[str, Any]) -> list[str]:
    """Keys both resolved configs set to different values (a key only one has, e.g. an option
    added since with a default that keeps the old behaviour, is not a difference)."""
    fx, fy = (flatten_config({k: v for k, v in r.get("config", {}).items() if k != "out"})
              for r in (x, y))
    return sorted(k for k in set(fx) & set(fy) if fx[k] != fy[k])


def _seed_sd(data: dict[str, Any], metrics: list[str]) -> dict[tuple[str, str, str], float]:
    """(setting, variant, metric) -> the std over seeds, as the suite's ``± std`` tables show it."""
    return {(setting, variant, m): float(np.std(v))
            for m in metrics for (variant, setting), v in summarise(data, m).items()
            if len(v) > 1 and np.isfinite(v).all()}


def compare(old: Path, new: Path, rel_tol: float, abs_tol: float, spread: Path | None = None,
            n_sd: float = 2.0) -> int:
    """Print the comparison table; return the number of metrics beyond tolerance.

    With ``spread`` (a full suite's results) a difference within ``n_sd`` seed standard deviations
    of that setting and variant is within noise too: seeds, not bits, are the noise a user sees
    (the same code on another CPU takes other floating-point paths).
    """
    committed, a = _runs(old)
    _, b = _runs(new)
    metrics = list(committed["metrics"])
    sd = _seed_sd(_runs(spread)[0], metrics) if spread else {}
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ResultsFileError(f"{old} and {new} share no (setting, variant, seed) run")
    for key in sorted(set(a) ^ set(b)):
        print(f"only in {old if key in a else new}: {key}")
    bad = compared = 0
    print(f"| setting | variant | seed | metric | {old.name} | rerun | diff | |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    for key in shared:
        if differ := _config_diff(a[key], b[key]):
            print(f"| {key[0]} | {key[1]} | {key[2]} | configs differ in {', '.join(differ)}: "
                  "not compared | | | | |")
            continue
        compared += 1
        for m in metrics:
            x, y = a[key]["metrics"].get(m), b[key]["metrics"].get(m)
            if x is None or y is None:
                continue
            relative = lower_is_better(m)  # errors (MAPE, RMSE): their scale follows the data
            diff = (y - x) / abs(x) if relative and x else y - x
            noise = sd.get((key[0], key[1], m), 0.0) * n_sd
            over = abs(diff) > (rel_tol if relative else abs_tol) and abs(y - x) > noise
            bad += over
            shown = f"{diff:+.1%}" if relative else f"{diff:+.4f}"
            print(f"| {key[0]} | {key[1]} | {key[2]} | {m} | {x:.4f} | {y:.4f} | {shown} | "
                  f"{'**beyond tolerance**' if over else ''} |")
    if not compared:
        raise ResultsFileError("every shared run has a different config: nothing could be compared")
    print(f"\n{compared} of {len(shared)} shared runs compared, {bad} metric(s) beyond tolerance "
          f"(relative {rel_tol:.0%} for error metrics; absolute {abs_tol} otherwise"
          + (f"; or within {n_sd:g} seed sd of {spread.name}" if spread else "") + ")")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("committed", type=Path)
    p.add_argument("rerun", type=Path)
    p.add_argument("--rel-tol", type=float, default=0.10)
    p.add_argument("--abs-tol", type=float, default=0.01)
    p.add_argument("--spread", type=Path, default=None,
                   help="a full suite's results: differences within --n-sd seed stds are noise")
    p.add_argument("--n-sd", type=float, default=2.0)
    args = p.parse_args(argv)
    try:
        bad = compare(args.committed, args.rerun, args.rel_tol, args.abs_tol, args.spread, args.n_sd)
        return 1 if bad else 0
    except ResultsFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
