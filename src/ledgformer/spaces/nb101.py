"""NAS-Bench-101: cells (adjacency + vertex ops), pruning, the official CIFAR-10 network.

Follows the official ``nasbench`` code: ``ModelSpec`` prunes vertices that are not on an
input -> output path; ``model_builder`` builds a stem conv3x3 (128 channels), 3 stacks of 3 cells
with a 2x2 max-pool and channel doubling between stacks, then global average pooling and a dense
layer. Inside a cell, the output channels are split among the vertices concatenated into the
output (``compute_vertex_channels``), inputs to a vertex are truncated (channel slice) to its
width, and the cell input reaches a vertex through a 1x1 conv-BN-ReLU projection.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder, T
from ledgformer.graph.ir import ArchGraph, Node

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
#: NASLib's op codes in naslib/zc_nasbench101.json (its ``all_ops`` list)
NASLIB_OPS: tuple[str, ...] = (INPUT, OUTPUT, MAXPOOL3X3, CONV1X1, CONV3X3)
MAX_VERTICES = 7
_STEM_CHANNELS = 128
_STACKS = 3
_CELLS_PER_STACK = 3
_CELL_NODE: dict[str, tuple[str, dict]] = {
    INPUT: ("input", {}),
    OUTPUT: ("output", {}),
    CONV3X3: ("conv", {"kernel": (3, 3)}),
    CONV1X1: ("conv", {"kernel": (1, 1)}),
    MAXPOOL3X3: ("maxpool", {"kernel": (3, 3)}),
}


class CellSpecError(LedgformerError, ValueError):
    """A NAS-Bench-101 cell (matrix + ops) that is malformed."""


def _check(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> list[list[int]]:
    n = len(matrix)
    m = [[int(v) for v in row] for row in matrix]
    if n < 2 or any(len(row) != n for row in m) or len(ops) != n:
        raise CellSpecError(f"NAS-Bench-101 cell: need a square matrix and one op per vertex, got "
                            f"{n} rows and {len(ops)} ops")
    if any(m[i][j] not in (0, 1) or (m[i][j] and j <= i) for i in range(n) for j in range(n)):
        raise CellSpecError("NAS-Bench-101 cell: the matrix must be a 0/1 upper-triangular DAG")
    if ops[0] != INPUT or ops[-1] != OUTPUT or any(o not in OPS for o in ops[1:-1]):
        raise CellSpecError(f"NAS-Bench-101 cell ops {list(ops)}: expected input, {OPS}..., output")
    return m


def prune(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """Drop vertices not on an input -> output path (as ``ModelSpec._prune``).

    Raises when the output is unreachable from the input (the spec is invalid then).
    """
    m = _check(matrix, ops)
    n = len(m)
    from_input, to_output = {0}, {n - 1}
    for j in range(1, n):
        if any(m[i][j] and i in from_input for i in range(j)):
            from_input.add(j)
    for i in range(n - 2, -1, -1):
        if any(m[i][j] and j in to_output for j in range(i + 1, n)):
            to_output.add(i)
    keep = sorted(from_input & to_output)
    if n - 1 not in from_input:
        raise CellSpecError("NAS-Bench-101 cell: the output is not reachable from the input")
    return [[m[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def decode_naslib(key: str | Sequence[int]) -> tuple[list[list[int]], list[str]]:
    """NASLib's NB101 tuple (7x7 flattened adjacency + 7 op codes) -> (matrix, ops)."""
    t = tuple(int(v) for v in (key.strip("()").split(",") if isinstance(key, str) else key))
    nv = MAX_VERTICES
    if len(t) != nv * nv + nv or any(not 0 <= c < len(NASLIB_OPS) for c in t[nv * nv:]):
        raise CellSpecError(f"NASLib NAS-Bench-101 key {key!r}: expected 49 adjacency values + 7 op codes")
    matrix = [list(t[r * nv:(r + 1) * nv]) for r in range(nv)]
    return matrix, [NASLIB_OPS[c] for c in t[nv * nv:]]


def cell_graph(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> ArchGraph:
    """The pruned cell as a DAG with ops as nodes (input, vertex ops, output)."""
    m, pops = prune(matrix, ops)
    nodes = []
    for i, op in enumerate(pops):
        vocab_op, attrs = _CELL_NODE[op]
        nodes.append(Node(op=vocab_op, name=f"v{i}", attrs=dict(attrs), raw_op=op))
    edges = [(i, j) for i in range(len(m)) for j in range(len(m)) if m[i][j]]
    meta = {"source": "nb101", "kind": "cell", "name": spec_name(m, pops), "matrix": m, "ops": pops,
            "input_shape": None, "batch_size": None}
    return ArchGraph(nodes, edges, meta)


def spec_name(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> str:
    """A readable id: the flattened matrix and the op initials."""
    bits = "".join(str(int(v)) for row in matrix for v in row)
    short = {INPUT: "i", OUTPUT: "o", CONV3X3: "3", CONV1X1: "1", MAXPOOL3X3: "m"}
    return f"{bits}:{''.join(short[o] for o in ops)}"


def vertex_channels(c_in: int, c_out: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """Channels of each vertex (official ``compute_vertex_channels``)."""
    n = len(matrix)
    ch = [0] * n
    ch[0], ch[n - 1] = c_in, c_out
    if n == 2:
        return ch
    in_degree = sum(matrix[i][n - 1] for i in range(1, n))
    interior, correction = divmod(c_out, in_degree)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            ch[v] = interior + (1 if correction else 0)
            correction = max(0, correction - 1)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for dst in range(v + 1, n - 1):
                if matrix[v][dst]:
                    ch[v] = max(ch[v], ch[dst])
    return ch


def _conv_bn_relu(b: GraphBuilder, x: T, c: int, k: int, name: str) -> T:
    x = b.conv(x, c, k, name=f"{name}.conv")
    x = b.batchnorm(x, name=f"{name}.bn")
    return b.act(x, "relu", name=f"{name}.relu")


def _truncate(b: GraphBuilder, x: T, c: int, name: str) -> T:
    if x.shape[1] == c:
        return x
    n, _, h, w = x.shape
    return b.add("slice", [x], (n, c, h, w), name=name, axis=1, start=0, end=c)


def _cell(b: GraphBuilder, x: T, m: list[list[int]], ops: list[str], c_out: int, name: str) -> T:
    n = len(m)
    ch = vertex_channels(x.shape[1], c_out, m)
    tensors: list[T] = [x]
    concat_in: list[T] = []
    for t in range(1, n - 1):
        add_in = [_truncate(b, tensors[s], ch[t], f"{name}.v{t}.trunc{s}") for s in range(1, t) if m[s][t]]
        if m[0][t]:
            add_in.append(_conv_bn_relu(b, x, ch[t], 1, f"{name}.v{t}.proj"))
        v_in = add_in[0]
        for k, other in enumerate(add_in[1:]):
            v_in = b.eltwise([v_in, other], "add", name=f"{name}.v{t}.add{k}")
        if ops[t] == MAXPOOL3X3:
            out = b.pool(v_in, "maxpool", 3, 1, padding=1, name=f"{name}.v{t}.maxpool")
        else:
            out = _conv_bn_relu(b, v_in, ch[t], 3 if ops[t] == CONV3X3 else 1, f"{name}.v{t}")
        tensors.append(out)
        if m[t][n - 1]:
            concat_in.append(out)
    if not concat_in:
        return _conv_bn_relu(b, x, c_out, 1, f"{name}.out.proj")
    out = concat_in[0] if len(concat_in) == 1 else b.concat(concat_in, name=f"{name}.concat")
    if m[0][n - 1]:
        proj = _conv_bn_relu(b, x, c_out, 1, f"{name}.out.proj")
        out = b.eltwise([out, proj], "add", name=f"{name}.out.add")
    return out


def network_graph(
    matrix: Sequence[Sequence[int]], ops: Sequence[str], *, input_size: int = 32, batch_size: int = 1,
    num_classes: int = 10,
) -> ArchGraph:
    """The official NAS-Bench-101 CIFAR-10 network of a (pruned) cell."""
    m, pops = prune(matrix, ops)
    if input_size < 4 or batch_size < 1:
        raise LedgformerError(f"NAS-Bench-101 network: input_size >= 4 and batch_size >= 1 expected, "
                              f"got {input_size}, {batch_size}")
    b = GraphBuilder(source="nb101", kind="network", name=spec_name(m, pops), matrix=m, ops=pops)
    x = b.input((batch_size, 3, input_size, input_size))
    x = _conv_bn_relu(b, x, _STEM_CHANNELS, 3, "stem")
    channels = _STEM_CHANNELS
    for stack in range(_STACKS):
        if stack > 0:
            # TF max_pooling2d(2, 2, 'same'): ceil(h / 2)
            n, c, h, w = x.shape
            pad_h, pad_w = (-h) % 2, (-w) % 2
            x = b.add("maxpool", [x], (n, c, (h + 1) // 2, (w + 1) // 2), name=f"stack{stack}.down",
                      kernel=(2, 2), stride=(2, 2), pads=(0, 0, pad_h, pad_w))
            channels *= 2
        for k in range(_CELLS_PER_STACK):
            x = _cell(b, x, m, pops, channels, f"stack{stack}.cell{k}")
    x = b.add("reduce_mean", [x], x.shape[:2], name="head.gap", axes=(2, 3))
    b.linear(x, num_classes, name="head.dense")
    return b.build()


__all__ = [
    "CONV1X1", "CONV3X3", "INPUT", "MAXPOOL3X3", "NASLIB_OPS", "OPS", "OUTPUT", "CellSpecError",
    "cell_graph", "decode_naslib", "network_graph", "prune", "spec_name", "vertex_channels",
]
