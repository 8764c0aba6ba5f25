"""`ledgformer` entry point: sub-commands live one per module in this package.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. User mistakes raise ``LedgformerError`` and end as one line on stderr with
exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from ledgformer import __version__
from ledgformer.errors import LedgformerError

#: the module behind each command, in the order `ledgformer --help` lists them: a run imports only
#: its own command's module (a fresh `ledgformer predict` is bounded by `import torch`; the other
#: modules would add ~0.1 s)
COMMANDS = {"demo": "demo_cmd", "inspect": "inspect_cmd", "hardware": "hardware_cmd", "data": "data_cmd",
            "train": "train_cmd", "evaluate": "train_cmd", "finetune": "train_cmd", "query": "query_cmd",
            "db": "db_cmd", "serve": "serve_cmd", "measure": "measure_cmd", "families": "families_cmd",
            "predict": "predict_cmd", "models": "models_cmd", "bench": "bench_cmd"}
#: every command module once, in that order
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or only ``command``'s sub-parser when that command is known."""
    parser = argparse.ArgumentParser(
        prog="ledgformer",
        description="Predict the latency and accuracy of neural networks from their graphs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  ledgformer inspect pytorchcv:resnet18",
    )
    parser.add_argument("--version", action="version", version=f"ledgformer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(f"ledgformer.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere, also after the sub-command
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LedgformerError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
