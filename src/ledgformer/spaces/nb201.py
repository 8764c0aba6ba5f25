"""NAS-Bench-201: arch strings, NASLib tuples, the official index order, cell and network graphs.

Two graph views of one architecture:

* ``cell_graph``: the 8-node "ops as nodes" DAG the accuracy predictors use (NAR-Former, TNASP,
  NASLib): input, the six edge ops in official string order, output.
* ``network_graph``: the whole CIFAR network of the official ``TinyNetwork`` (xautodl
  ``infer`` model), built with ``GraphBuilder`` so shapes and costs are exact.

``none`` edges in the network: by default they stay as ``zero`` nodes (0 MACs/FLOPs), because
the official PyTorch model executes them (``x.mul(0.)``) and latency was measured on that model;
``drop_none=True`` removes them (and any cell node left without a live input), which is the
graph a compiler that folds zeros would run. NAS-Bench-201's published FLOPs exclude them either
way. NAS-Bench-201 counts "FLOPs" as conv/linear MACs (+ bias) plus ``k*k`` per output element of
each ``AvgPool2d``; ``published_flops`` reproduces that figure from a network graph.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder, T
from ledgformer.graph.cost import numel
from ledgformer.graph.ir import ArchGraph, Node

#: official op names (the NAS-Bench-201 search-space order, used by its enumeration)
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: NASLib's op index order (naslib/*.json tuples)
NASLIB_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: cell edges (src node, dst node) in the order ops appear in the official arch string
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: NASLib's edge order ((1,2),(1,3),(1,4),(2,3),(2,4),(3,4), 1-based) as indices into EDGES
_NASLIB_EDGE_ORDER: tuple[int, ...] = (0, 1, 3, 2, 4, 5)
#: seed of the fixed shuffle that defines the official NAS-Bench-201 index order
_INDEX_SEED = 88
#: number of cells per stage and channels of the three stages of the CIFAR network
_CELLS_PER_STAGE = 5
_STAGE_CHANNELS = (16, 32, 64)

#: official op -> (vocabulary op, attributes) for the cell graph
_CELL_NODE: dict[str, tuple[str, dict]] = {
    "nor_conv_3x3": ("conv", {"kernel": (3, 3)}),
    "nor_conv_1x1": ("conv", {"kernel": (1, 1)}),
    "skip_connect": ("identity", {}),
    "none": ("zero", {}),
    "avg_pool_3x3": ("avgpool", {"kernel": (3, 3)}),
}
#: the 8x8 wiring of the ops-as-nodes cell (node 0 input, 1..6 the EDGES ops, 7 output):
#: an op node feeds every op that reads its destination cell node; ops into node 3 feed output
_CELL_EDGES: tuple[tuple[int, int], ...] = tuple(
    [(0, 1 + i) for i, (s, _) in enumerate(EDGES) if s == 0]
    + [(1 + i, 1 + j) for i, (_, d) in enumerate(EDGES) for j, (s, _) in enumerate(EDGES) if s == d]
    + [(1 + i, 7) for i, (_, d) in enumerate(EDGES) if d == 3]
)


class ArchStringError(LedgformerError, ValueError):
    """A NAS-Bench-201 architecture string or tuple that does not parse."""


def arch_str_to_ops(s: str) -> tuple[str, ...]:
    """``'|a~0|+|b~0|c~1|+|d~0|e~1|f~2|'`` -> ``(a, b, c, d, e, f)`` (EDGES order), validated."""
    nodes = s.strip().split("+")
    if len(nodes) != 3:
        raise ArchStringError(f"NAS-Bench-201 arch '{s}': expected 3 '+'-separated nodes")
    ops: list[str] = []
    for dst, node in enumerate(nodes, start=1):
        parts = [p for p in node.split("|") if p]
        if len(parts) != dst:
            raise ArchStringError(f"NAS-Bench-201 arch '{s}': node {dst} needs {dst} inputs")
        for src, part in enumerate(parts):
            op, _, idx = part.partition("~")
            if op not in OPS or idx != str(src):
                raise ArchStringError(
                    f"NAS-Bench-201 arch '{s}': bad edge '{part}' (expected <op>~{src}, op in {OPS})"
                )
            ops.append(op)
    return tuple(ops)


def ops_to_arch_str(ops: Sequence[str]) -> str:
    """Inverse of ``arch_str_to_ops``."""
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ArchStringError(f"NAS-Bench-201 ops {tuple(ops)}: expected 6 ops from {OPS}")
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def naslib_to_str(t: Sequence[int]) -> str:
    """A NASLib op-index tuple (NASLib edge order) -> official arch string."""
    if len(t) != 6 or any(not 0 <= int(i) < len(NASLIB_OPS) for i in t):
        raise ArchStringError(f"NASLib NAS-Bench-201 tuple {tuple(t)}: expected 6 indices in 0..4")
    ops = [""] * 6
    for pos, edge in enumerate(_NASLIB_EDGE_ORDER):
        ops[edge] = NASLIB_OPS[int(t[pos])]
    return ops_to_arch_str(ops)


def str_to_naslib(s: str) -> tuple[int, ...]:
    """Official arch string -> NASLib op-index tuple."""
    ops = arch_str_to_ops(s)
    return tuple(NASLIB_OPS.index(ops[edge]) for edge in _NASLIB_EDGE_ORDER)


def _reached_from_input(ops: Sequence[str]) -> set[int]:
    """Cell nodes that a path of non-``none`` edges connects to the cell input (node 0)."""
    reach = {0}
    for (src, dst), op in zip(EDGES, ops, strict=True):
        if op != "none" and src in reach:
            reach.add(dst)
    return reach


def output_cut_off(arch: str) -> bool:
    """True when ``none`` edges cut every path from the cell input to its output (341 archs).

    The network's output then does not depend on its input; runtimes that fold constants
    (HW-NAS-Bench's Raspberry Pi 4 and Pixel 3 files, which HELP reuses) time such a network at
    almost nothing, eager GPU runtimes at the full cost of its ops.
    """
    return 3 not in _reached_from_input(arch_str_to_ops(arch))


def live_arch(arch: str) -> str:
    """``arch`` with every op that cannot change the cell output written as ``none``.

    An edge is dead when no path of non-``none`` edges leads to it from the cell input (it only
    ever sees zeros) or from it to the cell output (nothing reads it). The 15,625 archs fall into
    9,445 such classes; the members of a class differ in CIFAR-10 accuracy by 0.3 points (median
    std, training noise) against 12.7 across the space, so one graph per class spares a predictor
    learning from a few labels that those ops do not matter. Conv of zeros is treated as zero,
    as NAS-Bench-201's own isomorphism count does (its BN shift is a learned constant).
    """
    ops = arch_str_to_ops(arch)
    live_in, live_out = _reached_from_input(ops), {3}
    for (src, dst), op in reversed(list(zip(EDGES, ops, strict=True))):
        if op != "none" and dst in live_out:
            live_out.add(src)
    return ops_to_arch_str([op if src in live_in and dst in live_out else "none"
                            for (src, dst), op in zip(EDGES, ops, strict=True)])


def all_arch_strings() -> list[str]:
    """All 15,625 archs in official NAS-Bench-201 index order.

    The benchmark enumerates ``CellStructure.gen_all`` (edges in string order, the last edge
    varying fastest, ops in ``OPS`` order) and shuffles it with ``random.seed(88)``; replaying
    that gives the index order without the data file (tests check it against HELP's
    ``str_arch2idx.pt``).
    """
    archs = [ops_to_arch_str(p) for p in itertools.product(OPS, repeat=len(EDGES))]
    random.Random(_INDEX_SEED).shuffle(archs)
    return archs


def cell_graph(arch: str, none_edges: bool = True) -> ArchGraph:
    """The 8-node ops-as-nodes cell DAG (input, 6 edge ops in string order, output).

    ``none_edges=False`` keeps the ``none`` ops as nodes but drops their edges, so the wiring
    follows the cell's real data flow: with the fixed DAG every arch has the same structural
    relations (only the node ops differ), without those edges a model's relation bias and the
    degree features see which paths carry data.
    """
    ops = arch_str_to_ops(arch)
    nodes = [Node(op="input", name="input", raw_op="input")]
    for i, op in enumerate(ops):
        vocab_op, attrs = _CELL_NODE[op]
        src, dst = EDGES[i]
        nodes.append(Node(op=vocab_op, name=f"edge_{src}_{dst}", attrs=dict(attrs), raw_op=op))
    nodes.append(Node(op="output", name="output", raw_op="output"))
    meta = {"source": "nb201", "kind": "cell", "name": arch, "input_shape": None, "batch_size": None}
    edges = [(i, j) for i, j in _CELL_EDGES
             if none_edges or (nodes[i].raw_op != "none" and nodes[j].raw_op != "none")]
    return ArchGraph(nodes, edges, meta)


def _relu_conv_bn(b: GraphBuilder, x: T, c_out: int, kernel: int, stride: int, name: str) -> T:
    x = b.act(x, "relu", name=f"{name}.relu")
    x = b.conv(x, c_out, kernel, stride=stride, name=f"{name}.conv")
    return b.batchnorm(x, name=f"{name}.bn")


def _sum(b: GraphBuilder, xs: list[T], name: str) -> T:
    """Sum of the inputs as a chain of binary adds (what ``sum(...)`` executes)."""
    out = xs[0]
    for k, x in enumerate(xs[1:]):
        out = b.eltwise([out, x], "add", name=f"{name}.add{k}")
    return out


def _edge(b: GraphBuilder, x: T, op: str, name: str) -> T:
    c = x.shape[1]
    if op == "nor_conv_3x3":
        return _relu_conv_bn(b, x, c, 3, 1, name)
    if op == "nor_conv_1x1":
        return _relu_conv_bn(b, x, c, 1, 1, name)
    if op == "avg_pool_3x3":
        return b.pool(x, "avgpool", 3, 1, padding=1, name=f"{name}.pool")
    if op == "skip_connect":
        return b.add("identity", [x], x.shape, name=f"{name}.skip", raw_op="skip_connect")
    return b.add("zero", [x], x.shape, name=f"{name}.none", raw_op="none")


def _cell(b: GraphBuilder, x: T, ops: Sequence[str], drop_none: bool, name: str) -> T:
    """One InferCell: node j = sum of its incoming edge ops; the output is node 3."""
    nodes: list[T | None] = [x]
    for dst in (1, 2, 3):
        terms = []
        for i, (src, d) in enumerate(EDGES):
            if d != dst:
                continue
            inp = nodes[src]
            if inp is None or (drop_none and ops[i] == "none"):
                continue
            terms.append(_edge(b, inp, ops[i], f"{name}.e{src}{dst}"))
        nodes.append(_sum(b, terms, f"{name}.n{dst}") if terms else None)
    out = nodes[3]
    if out is None:  # every path was 'none': the official cell outputs zeros
        out = b.add("zero", [x], x.shape, name=f"{name}.dead", raw_op="none")
    return out


def _reduction(b: GraphBuilder, x: T, c_out: int, name: str) -> T:
    """ResNetBasicblock(stride 2): two ReLU-Conv-BN plus avgpool(2) + conv1x1 shortcut."""
    y = _relu_conv_bn(b, x, c_out, 3, 2, f"{name}.a")
    y = _relu_conv_bn(b, y, c_out, 3, 1, f"{name}.b")
    r = b.pool(x, "avgpool", 2, 2, name=f"{name}.down.pool")
    r = b.conv(r, c_out, 1, name=f"{name}.down.conv")
    return b.eltwise([r, y], "add", name=f"{name}.add")


def network_graph(
    arch: str, *, num_classes: int = 10, input_size: int = 32, batch_size: int = 1,
    drop_none: bool = False,
) -> ArchGraph:
    """The whole NAS-Bench-201 network (CIFAR: 32x32, 10 classes; ImageNet16-120: 16, 120)."""
    ops = arch_str_to_ops(arch)
    if input_size < 4 or batch_size < 1 or num_classes < 1:
        raise LedgformerError(
            f"NAS-Bench-201 network: input_size >= 4, batch_size >= 1 and num_classes >= 1 "
            f"expected, got {input_size}, {batch_size}, {num_classes}"
        )
    b = GraphBuilder(source="nb201", kind="network", name=arch, num_classes=num_classes)
    x = b.input((batch_size, 3, input_size, input_size))
    x = b.conv(x, _STAGE_CHANNELS[0], 3, name="stem.conv")
    x = b.batchnorm(x, name="stem.bn")
    for stage, c in enumerate(_STAGE_CHANNELS):
        if stage > 0:
            x = _reduction(b, x, c, f"s{stage}.reduce")
        for k in range(_CELLS_PER_STAGE):
            x = _cell(b, x, ops, drop_none, f"s{stage}.c{k}")
    x = b.batchnorm(x, name="head.bn")
    x = b.act(x, "relu", name="head.relu")
    x = b.global_pool(x, name="head.pool")
    x = b.flatten(x, name="head.flatten")
    b.linear(x, num_classes, name="head.fc")
    return b.build()


def published_flops(graph: ArchGraph) -> int:
    """NAS-Bench-201's FLOPs convention: conv/linear MACs (+ bias) + k*k per avgpool output."""
    total = 0
    for n in graph.nodes:
        if n.op in ("conv", "gemm"):
            total += n.macs + (numel(n.output_shapes[0]) if n.attrs.get("bias") else 0)
        elif n.op == "avgpool":
            total += numel(n.output_shapes[0]) * numel(n.attrs["kernel"])
    return total


__all__ = [
    "EDGES", "NASLIB_OPS", "OPS", "ArchStringError", "all_arch_strings", "arch_str_to_ops",
    "cell_graph", "naslib_to_str", "network_graph", "ops_to_arch_str", "output_cut_off", "published_flops",
    "str_to_naslib",
]
