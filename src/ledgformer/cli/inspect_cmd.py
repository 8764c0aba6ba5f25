"""`ledgformer inspect MODEL`: parse a network and show its operators and costs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph

EPILOG = """examples:
  ledgformer inspect pytorchcv:resnet18
  ledgformer inspect timm:vit_tiny_patch16_224 --batch 8
  ledgformer inspect model.onnx --input-shape 1,3,320,320 --nodes
  ledgformer inspect model.onnx --json > model.ir.json"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="parse a model (ONNX file or zoo name) and show its per-op costs",
        description="Parse an ONNX file, or build a named model (pytorchcv:NAME, timm:NAME), "
        "into the ArchGraph IR and print its operators with MACs, parameters and memory traffic.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="an .onnx path, or pytorchcv:NAME / timm:NAME")
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    p.add_argument("--input-shape", default=None, help="input shape, e.g. 1,3,224,224 "
                   "(needed when the ONNX input has dynamic dimensions)")
    p.add_argument("--nodes", action="store_true", help="one row per node instead of per op type")
    p.add_argument("--json", action="store_true", help="print the IR as JSON instead of a table")
    p.set_defaults(func=run)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """'1,3,224,224' or '1x3x224x224' -> (1, 3, 224, 224)."""
    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise LedgformerError(f"--input-shape '{text}' is not a list of integers like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise LedgformerError(f"--input-shape '{text}' must have positive dimensions")
    return dims


def run(args: argparse.Namespace) -> int:
    from ledgformer.graph.zoo import load_model

    if args.batch is not None and args.batch <= 0:
        raise LedgformerError(f"--batch must be a positive integer, got {args.batch}")
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"parsing {Path(args.model).name}", total=None)
        graph = load_model(
            args.model,
            input_shape=parse_shape(args.input_shape),
            batch_size=args.batch,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if args.json:
        sys.stdout.write(graph.to_json(indent=1) + "\n")
        return 0
    Console().print(node_table(graph) if args.nodes else op_table(graph))
    unknown = graph.unknown_ops()
    if unknown:
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(unknown.items()))
        console.print(f"[yellow]warning:[/] {sum(unknown.values())} node(s) of unknown op type: {listed}")
    return 0


def _fmt(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _title(graph: ArchGraph) -> str:
    m = graph.meta
    shape = "x".join(str(d) for d in m.get("input_shape", ()))
    return f"{m.get('name', 'model')}  input {shape}  ({len(graph)} nodes)"


def op_table(graph: ArchGraph) -> Table:
    """Costs aggregated per op type, largest MAC share first, with totals."""
    rows: dict[str, list[int]] = {}
    for n in graph.nodes:
        r = rows.setdefault(n.op, [0, 0, 0, 0, 0])
        for i, v in enumerate((1, n.macs, n.flops, n.params, n.mem_bytes)):
            r[i] += v
    total_macs = max(graph.macs, 1)
    table = Table(title=_title(graph), show_footer=True)
    for name, footer in (("op", "total"), ("count", str(len(graph))), ("MACs", _fmt(graph.macs)),
                         ("MAC %", "100.0"), ("FLOPs", _fmt(graph.flops)),
                         ("params", _fmt(graph.params)), ("bytes", _fmt(graph.mem_bytes))):
        table.add_column(name, footer=footer, justify="left" if name == "op" else "right")
    for op, (count, macs, flops, params, mem) in sorted(rows.items(), key=lambda kv: (-kv[1][1], -kv[1][4])):
        table.add_row(op, str(count), _fmt(macs), f"{100 * macs / total_macs:.1f}", _fmt(flops),
                      _fmt(params), _fmt(mem))
    return table


def node_table(graph: ArchGraph) -> Table:
    """One row per node in topological order."""
    table = Table(title=_title(graph))
    for name in ("#", "name", "op", "output", "MACs", "params", "bytes"):
        table.add_column(name, justify="right" if name in ("#", "MACs", "params", "bytes") else "left")
    for i, n in enumerate(graph.nodes):
        out = ",".join("x".join(map(str, s)) for s in n.output_shapes)
        table.add_row(str(i), n.name, n.op if n.op != "unknown" else f"unknown({n.raw_op})", out,
                      _fmt(n.macs), _fmt(n.params), _fmt(n.mem_bytes))
    return table

