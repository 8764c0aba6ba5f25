"""`ledgformer hardware list|show|validate`: browse the built-in hardware cards and check user cards."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ledgformer.errors import LedgformerError
from ledgformer.hardware import list_cards, load_card
from ledgformer.hardware.card import FIGURE_FIELDS
from ledgformer.hardware.registry import load_card_file

EPILOG = """examples:
  ledgformer hardware list --filter help/
  ledgformer hardware show 'mmb/tflite/pixel4|2small|quant'
  ledgformer hardware show help/1080ti_32 --json
  ledgformer hardware validate my_board.yaml
  LEDGFORMER_CARDS=~/cards ledgformer hardware show my_board"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hardware",
        help="list, show and validate hardware cards",
        description="Hardware cards describe the platform a latency is measured on (device, runtime, "
        "precision, batch). Every benchmark device key has a built-in card; add your own as a YAML file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hw = p.add_subparsers(dest="hardware_command", metavar="ACTION", required=True)
    ls = hw.add_parser("list", help="list card names (built-in and $LEDGFORMER_CARDS)")
    ls.add_argument("--filter", default="", help="only names containing this text, e.g. help/ or pixel4")
    ls.add_argument("--plain", action="store_true", help="one name per line, no table")
    ls.set_defaults(func=run_list)
    show = hw.add_parser("show", help="show one card: its text, figures and sources")
    show.add_argument("name", help="a card name or a YAML file path")
    show.add_argument("--json", action="store_true", help="print the card as JSON")
    show.set_defaults(func=run_show)
    val = hw.add_parser("validate", help="check card files; exit code 2 on the first bad one")
    val.add_argument("files", nargs="+", help="YAML card files")
    val.set_defaults(func=run_validate)


def run_list(args: argparse.Namespace) -> int:
    names = [n for n in list_cards() if args.filter in n]
    if not names:
        raise LedgformerError(f"no hardware card name contains {args.filter!r}")
    if args.plain:
        sys.stdout.write("".join(f"{n}\n" for n in names))
        return 0
    table = Table(title=f"{len(names)} hardware cards")
    table.add_column("name", no_wrap=True, min_width=max(len(n) for n in names))
    for col in ("kind", "chip", "runtime", "precision", "batch"):
        table.add_column(col)
    for name in names:
        c = load_card(name)
        table.add_row(name, c.kind, c.chip, c.runtime or "-", c.precision or "-",
                      "-" if c.batch_size is None else str(c.batch_size))
    Console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    card = load_card(args.name)
    if args.json:
        sys.stdout.write(json.dumps(card.to_dict(), indent=1) + "\n")
        return 0
    console = Console()
    console.print(f"[bold]{card.name}[/]\n{card.to_text()}\n")
    table = Table("field", "value", "source")
    for key, value in card.to_dict().items():
        if key in ("name", "sources") or value is None:
            continue
        cited = key in FIGURE_FIELDS or key in ("memory_type", "runtime", "runtime_version", "precision",
                                                "measurement")
        table.add_row(key, str(value), (card.source_for(key) or "") if cited else "")
    console.print(table)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    for file in args.files:
        card = load_card_file(Path(file))
        print(f"ok: {file} ({card.name}): {card.to_text()}")
    return 0
