"""`ledgformer query MODEL --platform P`: the measured latency if the database has it, else a prediction."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ledgformer.errors import LedgformerError

if TYPE_CHECKING:
    from ledgformer.graph.ir import ArchGraph

EPILOG = """examples:
  ledgformer query pytorchcv:resnet18 --platform help/1080ti_32
  ledgformer query model.onnx --platform my_board --db sqlite:///team.db
  ledgformer query graph.json --platform help/pixel3 --json
  ledgformer query --platform help/pixel3 \\
      '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
  ledgformer query model.onnx --platform my_board --predictor flops   # FLOPs / roofline estimate

MODEL is an ONNX file, an IR JSON file (ledgformer inspect --json), pytorchcv:NAME / timm:NAME, or a
NAS-Bench-201 arch string. The answer says whether it is measured (median of the stored repeats) or
predicted, and by which predictor and version (a checkpoint's hash). Without --predictor the
prediction comes from the shipped learned latency predictor `ledgformer predict` uses
(help-nb201-latency for NB201 arch strings, latency-all otherwise; `ledgformer models list`).
--predictor flops gives the labelled FLOPs estimate instead: FLOPs x the median ms/GFLOP of the
platform's measurements in the database, or the card's roofline bound when it has none."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="latency of a model on a platform: measured if known, else predicted",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX file, IR JSON file, pytorchcv:NAME / timm:NAME, or an NB201 arch "
                   "string")
    p.add_argument("--platform", required=True,
                   help="a platform in the database or a hardware card name/file")
    p.add_argument("--db", default=None, help="database URL or SQLite file (default: $LEDGFORMER_DB or the "
                   "user data dir)")
    p.add_argument("--batch", type=int, default=None, help="override the batch size (zoo models, ONNX)")
    p.add_argument("--predictor", default=None, metavar="NAME|PATH|MODULE:FUNC|flops",
                   help="prediction source: a shipped latency predictor (ledgformer models list), a "
                   "checkpoint, a predict_fn(graph, card) -> ms, or 'flops' for the FLOPs / roofline "
                   "estimate (default: the shipped predictor `ledgformer predict` uses)")
    p.add_argument("--no-record", action="store_true", help="do not store the prediction in the database")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=run)


def load_graph(model: str, batch_size: int | None) -> ArchGraph:
    """An IR JSON file as is, an NB201 arch string as the whole CIFAR network (batch 1, as
    ``ledgformer predict`` builds it: the card carries the batch), anything else through the model
    zoo / ONNX importer."""
    from ledgformer.graph.ir import ArchGraph

    if model.startswith("|"):
        from ledgformer.spaces import nb201

        if batch_size is not None:
            raise LedgformerError("--batch applies to zoo models and ONNX files; an NB201 network is built "
                                  "at batch 1 and the platform's card carries the batch")
        return nb201.network_graph(nb201.ops_to_arch_str(nb201.arch_str_to_ops(model)))
    if model.lower().endswith(".json"):
        path = Path(model)
        if not path.is_file():
            raise LedgformerError(f"{model}: no such IR JSON file")
        try:
            return ArchGraph.from_json(path.read_text())
        except (ValueError, KeyError, TypeError) as err:
            raise LedgformerError(f"{model}: not a valid IR JSON graph ({err})") from err
    from ledgformer.graph.zoo import load_model

    return load_model(model, batch_size=batch_size)


def run(args: argparse.Namespace) -> int:
    from ledgformer.db import LatencyDB, answer  # sqlalchemy + alembic: only when the command runs
    from ledgformer.db.answer import load_predictor, platform_card

    graph = load_graph(args.model, args.batch)
    with LatencyDB(args.db) as db:
        card = platform_card(db, args.platform)
        # a measured answer needs no predictor: skip loading it (and torch)
        measured = db.latest_measurement(graph.content_hash(), args.platform) is not None
        predictor = None if measured else load_predictor(args.predictor, model=args.model)
        result = answer(db, graph, args.platform, card, predictor, record=not args.no_record)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=1) + "\n")
    else:
        sys.stdout.write(result.describe() + "\n")
    return 0
