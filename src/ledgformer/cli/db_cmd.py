"""`ledgformer db stats|export|migrate|add-platform`: look after the latency database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ledgformer.errors import LedgformerError

EPILOG = """examples:
  ledgformer db stats
  ledgformer db stats --check --db sqlite:///team.db
  ledgformer db export --format nnlqp out/nnlqp_export
  ledgformer db export --format records out/records.json
  ledgformer db migrate --db postgresql+psycopg://me@dbhost/latency
  ledgformer db add-platform my_board my_board.yaml

The default database is $LEDGFORMER_DB (a URL or a file path), else latency.db in the user data dir."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="statistics, export and migration of the latency database",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text)
        a.add_argument("--db", default=None, help="database URL or SQLite file")
        return a

    st = action("stats", "row counts overall and per platform")
    st.add_argument("--json", action="store_true", help="print as JSON")
    st.add_argument("--check", action="store_true",
                    help="also verify integrity and that every measurement is complete (exit 1 if not)")
    st.set_defaults(func=run_stats)
    ex = action("export", "export the newest measurement per graph/platform")
    ex.add_argument("--format", choices=("nnlqp", "records"), required=True,
                    help="nnlqp: a folder with gt.txt + IR JSON; records: one JSON file (training format)")
    ex.add_argument("out", help="output folder (nnlqp, must be new or empty) or JSON file (records)")
    ex.set_defaults(func=run_export)
    mi = action("migrate", "create or upgrade the schema to this version of ledgformer")
    mi.set_defaults(func=run_migrate)
    ap = action("add-platform", "register a platform name with its hardware card")
    ap.add_argument("name", help="platform name used by measurements and queries")
    ap.add_argument("card", help="a hardware card name or YAML file")
    ap.add_argument("--replace", action="store_true", help="replace the card of an existing platform")
    ap.set_defaults(func=run_add_platform)


def run_stats(args: argparse.Namespace) -> int:
    from ledgformer.db import LatencyDB  # sqlalchemy + alembic: only when the command runs

    with LatencyDB(args.db) as db:
        stats = db.stats()
        problems = db.verify() if args.check else []
    if args.check:
        stats["problems"] = problems
    if args.json:
        sys.stdout.write(json.dumps(stats, indent=1) + "\n")
    else:
        console = Console()
        console.print(f"[bold]{stats['url']}[/] (schema {stats['schema_revision']})")
        counts = ", ".join(f"{stats[k]} {k}" for k in ("graphs", "platforms", "measurements", "predictions"))
        size = f", {stats['size_bytes'] / 1e6:.2f} MB" if "size_bytes" in stats else ""
        console.print(counts + size)
        if stats["per_platform"]:
            table = Table("platform", "runtime", "threads", "measurements", "predictions")
            for p in stats["per_platform"]:
                threads = "-" if p["threads"] is None else str(p["threads"])
                table.add_row(p["platform"], p["runtime"] or "-", threads, str(p["measurements"]),
                              str(p["predictions"]))
            console.print(table)
        if args.check:
            console.print("check: ok" if not problems else "check FAILED:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


def run_export(args: argparse.Namespace) -> int:
    from ledgformer.db import LatencyDB
    from ledgformer.db.export import write_records_json

    out = Path(args.out)
    with LatencyDB(args.db) as db:
        if args.format == "nnlqp":
            db.export_nnlqp(out)
            n = sum(1 for _ in (out / "gt.txt").open())
            print(f"wrote {n} measurements to {out}/gt.txt, graphs as IR JSON in {out}/ir (see README.txt)")
        else:
            if out.is_dir():
                raise LedgformerError(f"{out} is a folder; give a JSON file path for --format records")
            data = db.export_records()
            write_records_json(data, out)
            print(f"wrote {len(data.records)} records of {len(data.graphs)} graphs to {out}")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from ledgformer.db.engine import current_revision, make_engine, resolve_url, upgrade

    engine = make_engine(resolve_url(args.db))
    try:
        before = current_revision(engine)
        _, head = upgrade(engine)
    finally:
        engine.dispose()
    if before == head:
        print(f"{engine.url.render_as_string()}: schema already at revision {head}")
    else:
        print(f"{engine.url.render_as_string()}: schema {before or 'empty'} -> {head}")
    return 0


def run_add_platform(args: argparse.Namespace) -> int:
    from ledgformer.db import LatencyDB

    with LatencyDB(args.db) as db:
        pid = db.add_platform(args.name, args.card, replace=args.replace)
    print(f"platform {args.name!r} (id {pid}) registered")
    return 0
