"""`ledgformer models list`: the predictors shipped in the package, their training data and test metrics."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EPILOG = """examples:
  ledgformer models list
  ledgformer models list --json

Each predictor was trained by the command shown (see benchmarks/train_shipped.py); the metrics are
copied from that run's metrics.json. Use one with `ledgformer predict MODEL --predictor NAME` or
`Predictor.load(NAME)` from Python."""

#: headline test metrics per task (metrics.json keys), in display order
HEADLINE = {
    "accuracy": (("test.kendall_tau", "Kendall tau {:.3f}"), ("test.spearman", "Spearman {:.3f}"),
                 ("test.mape", "MAPE {:.2f} %")),
    "latency": (("test.mean_device_spearman", "mean device Spearman {:.3f}"),
                ("test.spearman", "Spearman {:.3f}"), ("test.mape", "MAPE {:.1f} %")),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped predictors (training data, test metrics)",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    act = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = act.add_parser("list", help="every shipped predictor with its training data and test metrics",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("--json", action="store_true", help="print the manifest entries as JSON")
    ls.set_defaults(func=run_list)


def headline(entry: dict[str, Any]) -> str:
    """The predictor's main test metrics as one line."""
    metrics = entry.get("metrics", {})
    parts = [fmt.format(metrics[k]) for k, fmt in HEADLINE.get(entry.get("task", ""), ())
             if metrics.get(k) is not None]
    n = metrics.get("test.n")
    return ", ".join(parts) + (f" (n = {int(n):,})" if parts and n else "") if parts else "-"


def run_list(args: argparse.Namespace) -> int:
    from ledgformer.api.shipped import manifest

    entries = manifest()
    if args.json:
        sys.stdout.write(json.dumps(entries, indent=1) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not entries:
        console.print("no shipped predictors (train them with `python benchmarks/train_shipped.py`)")
        return 0
    table = Table(title=f"{len(entries)} shipped predictor(s)", show_lines=True)
    for col in ("name", "task", "predicts", "training data", "test metrics"):
        table.add_column(col, no_wrap=col == "name")
    for name, e in entries.items():
        table.add_row(name, e.get("task", "?"), e.get("description", ""), e.get("training_data", ""),
                      headline(e))
    console.print(table)
    for name, e in entries.items():
        console.print(f"{name}: trained by `{e.get('command', '?')}`", highlight=False)
    return 0
