"""``ledgformer data``: list, inspect, fetch and verify the benchmark data under the data root."""

from __future__ import annotations

import argparse
from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table

from ledgformer.data.registry import (
    BENCHMARKS,
    DATASETS,
    get_benchmark,
    list_benchmarks,
    load_benchmark,
    missing_files,
)
from ledgformer.data.root import DATA_ENV, resolve_data_root
from ledgformer.errors import LedgformerError

EPILOG = f"""examples:
  ledgformer data list
  ledgformer data info help-nb201
  ledgformer data fetch help --data-root ~/ledgformer-data
  ledgformer data verify naslib

data root: --data-root, else ${DATA_ENV}, else the user cache folder (ledgformer/data)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data", help="list, inspect and fetch benchmark data", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    root_help = f"data folder (default: ${DATA_ENV} or the user cache folder)"
    p = sub.add_parser("list", help="every benchmark: present or missing, records, devices")
    p.add_argument("--data-root", help=root_help)
    p.add_argument("--no-count", action="store_true", help="skip loading (no record/device counts)")
    p = sub.add_parser("info", help="records, devices, targets and graph sizes of one benchmark")
    p.add_argument("name", help="benchmark name (see `ledgformer data list`)")
    p.add_argument("--data-root", help=root_help)
    p = sub.add_parser("fetch", help="download a data set from its public source (checksummed)")
    p.add_argument("name", help=f"data set ({', '.join(d for d in DATASETS if DATASETS[d].fetchable)}), "
                                "a benchmark name, or 'all'")
    p.add_argument("--data-root", help=root_help)
    p.add_argument("--mirror", help="base URL replacing https://raw.githubusercontent.com")
    p.add_argument("--force", action="store_true", help="download again even if the file is valid")
    p = sub.add_parser("verify", help="check the files of a data set against the reference checksums")
    p.add_argument("name", help="data set or benchmark name")
    p.add_argument("--data-root", help=root_help)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_root)
    console = Console()
    if args.data_command == "list":
        return _list(root, console, count=not args.no_count)
    if args.data_command == "info":
        return _info(args.name, root, console)
    if args.data_command == "fetch":
        return _fetch(args.name, root, console, args.mirror, args.force)
    return _verify(args.name, root, console)


def _dataset_of(name: str) -> str:
    if name in DATASETS:
        return name
    if name in BENCHMARKS:
        return BENCHMARKS[name].dataset
    raise LedgformerError(f"unknown data set or benchmark '{name}'; data sets: {', '.join(DATASETS)}")


def _list(root: Any, console: Console, count: bool) -> int:
    table = Table(title=f"benchmarks under {root}")
    for col in ("benchmark", "data set", "status", "records", "devices"):
        table.add_column(col, no_wrap=True)
    for info in list_benchmarks():
        missing = missing_files(info, root)
        records = devices = "-"
        if missing:
            status = f"[red]missing {len(missing)} file(s)[/red]"
        else:
            status = "[green]present[/green]"
            if count:
                data = load_benchmark(info.name, root, with_graphs=False, show_progress=False)
                records, devices = str(len(data.records)), str(len(data.devices()))
        table.add_row(info.name, info.dataset, status, records, devices)
    console.print(table)
    console.print("get a missing data set with `ledgformer data fetch NAME` (see `ledgformer data fetch -h`)")
    return 0


def _span(values: list[float]) -> str:
    return f"{min(values):.4g} / {median(values):.4g} / {max(values):.4g}"


def _info(name: str, root: Any, console: Console) -> int:
    info = get_benchmark(name)
    data = load_benchmark(name, root)
    console.print(f"[bold]{name}[/bold]: {info.description}")
    console.print(f"data root {root}; records {len(data.records)}; graphs {len(data.graphs)}; "
                  f"failures {len(data.failures)}")
    for gid, why in list(data.failures.items())[:5]:
        console.print(f"  [red]failed[/red] {gid}: {why}")
    families = sorted({str(r.tags.get("family") or r.tags.get("dataset")) for r in data.records})
    console.print(f"families / data sets: {', '.join(families)}")
    table = Table(title="targets per device (min / median / max)")
    for col in ("device", "kind", "records", "target"):
        table.add_column(col)
    groups: dict[tuple[str, str], list[float]] = {}
    for r in data.records:
        groups.setdefault((r.device or "-", r.kind), []).append(r.target)
    for (device, kind), values in sorted(groups.items()):
        table.add_row(device, kind, str(len(values)), _span(values))
    console.print(table)
    if data.graphs:
        graphs = list(data.graphs.values())
        console.print(f"graph nodes (min / median / max): {_span([float(len(g)) for g in graphs])}")
        console.print(f"MACs (min / median / max): {_span([float(g.macs) for g in graphs])}")
    for key, value in data.meta.items():
        if key not in ("batch_size", "hardware_embedding_index"):
            console.print(f"meta {key}: {value}")
    return 0


def _fetch(name: str, root: Any, console: Console, mirror: str | None, force: bool) -> int:
    from ledgformer.data.fetch import fetch_dataset

    names = [d for d in DATASETS if DATASETS[d].fetchable] if name == "all" else [_dataset_of(name)]
    for ds in names:
        files = fetch_dataset(ds, root, mirror=mirror, force=force)
        console.print(f"{ds}: {len(files)} file(s) downloaded, all files present under {root}")
    return 0


def _verify(name: str, root: Any, console: Console) -> int:
    from ledgformer.data.fetch import verify_dataset

    ds = _dataset_of(name)
    problems = verify_dataset(ds, root)
    for path, why in problems.items():
        console.print(f"[red]{path}[/red]: {why}")
    console.print(f"{ds}: {len(DATASETS[ds].files) - len(problems)} of {len(DATASETS[ds].files)} files ok")
    return 1 if problems else 0
