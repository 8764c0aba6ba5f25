"""ArchGraph: the operator graph with per-node costs that the whole project passes around.

Nodes are kept in topological order (``ArchGraph`` sorts them on construction), edges are
``(src, dst)`` node indices. Cost conventions (see ``ledgformer.graph.cost``):

* ``macs``: multiply-accumulates of the compute-heavy ops (conv, conv_transpose, gemm, matmul);
  the figure papers publish as "FLOPs" (ResNet-18: 1.82 G).
* ``flops``: floating-point operations of every node: 2 x MACs for the compute-heavy ops plus
  one per output element (or per element touched) for element-wise ops, norms and pools.
* ``params``: trainable parameters held by the node (BatchNorm counts scale and bias, like
  ``sum(p.numel() for p in model.parameters())``).
* ``mem_bytes``: bytes read and written: inputs + weights + outputs, at the graph's dtype size.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgformer.errors import LedgformerError
from ledgformer.graph.ops import OP_VOCAB

if TYPE_CHECKING:
    import networkx as nx

#: bump when the IR's JSON layout or the meaning of a field changes (caches key on it)
IR_VERSION = 1

Shape = tuple[int, ...]


class GraphError(LedgformerError, ValueError):
    """An ArchGraph that breaks an invariant (bad edge, cycle, unknown field)."""


@dataclass
class Node:
    """One operator: normalised type, attributes, tensor shapes and cost."""

    op: str
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    input_shapes: list[Shape] = field(default_factory=list)
    output_shapes: list[Shape] = field(default_factory=list)
    macs: int = 0
    flops: int = 0
    params: int = 0
    mem_bytes: int = 0
    #: the operator as the source named it (ONNX op type, NB201 op name ...)
    raw_op: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "name": self.name,
            "attrs": {k: _listify(v) for k, v in self.attrs.items()},
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "mem_bytes": self.mem_bytes,
            "raw_op": self.raw_op,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        attrs = {k: _tuplify(v) for k, v in d.get("attrs", {}).items()}
        return cls(
            op=d["op"],
            name=d.get("name", ""),
            attrs=attrs,
            input_shapes=[tuple(s) for s in d.get("input_shapes", [])],
            output_shapes=[tuple(s) for s in d.get("output_shapes", [])],
            macs=int(d.get("macs", 0)),
            flops=int(d.get("flops", 0)),
            params=int(d.get("params", 0)),
            mem_bytes=int(d.get("mem_bytes", 0)),
            raw_op=d.get("raw_op", ""),
        )


def _listify(value: Any) -> Any:
    """JSON form of an attribute value: tuples become lists, recursively."""
    return [_listify(v) for v in value] if isinstance(value, (list, tuple)) else value


def _tuplify(value: Any) -> Any:
    """Inverse of JSON's tuple -> list, recursively (attributes are tuples in memory)."""
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def _canon(value: Any) -> Any:
    """JSON-stable form of an attribute value (tuples -> lists, floats rounded)."""
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


class ArchGraph:
    """A neural network as a DAG of operators with costs, in topological order."""

    def __init__(
        self,
        nodes: list[Node],
        edges: list[tuple[int, int]],
        meta: dict[str, Any] | None = None,
    ) -> None:
        n = len(nodes)
        for s, d in edges:
            if not (0 <= s < n and 0 <= d < n) or s == d:
                raise GraphError(f"edge ({s}, {d}) is invalid for a graph of {n} nodes")
        for i, node in enumerate(nodes):
            if node.op not in OP_VOCAB:
                raise GraphError(
                    f"node {i} ({node.name or node.raw_op}): op '{node.op}' is not in the "
                    "vocabulary; map it to a known op or to 'unknown'"
                )
        order = _topological_order(n, edges)
        if order != list(range(n)):
            remap = {old: new for new, old in enumerate(order)}
            nodes = [nodes[i] for i in order]
            edges = [(remap[s], remap[d]) for s, d in edges]
        self.nodes: list[Node] = nodes
        self.edges: list[tuple[int, int]] = sorted(set(edges))
        self.meta: dict[str, Any] = dict(meta or {})

    # ---- structure -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        name = self.meta.get("name", "graph")
        return (f"ArchGraph({name!r}, {len(self.nodes)} nodes, {len(self.edges)} edges, "
                f"{self.macs / 1e6:.1f} MMACs)")

    def parents(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for s, d in self.edges:
            out[d].append(s)
        return out

    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for s, d in self.edges:
            out[s].append(d)
        return out

    # ---- totals ----------------------------------------------------------------------------
    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def mem_bytes(self) -> int:
        return sum(n.mem_bytes for n in self.nodes)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def unknown_ops(self) -> dict[str, int]:
        """Raw op types that fell into the ``unknown`` bucket, with their counts."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            if node.op == "unknown":
                counts[node.raw_op] = counts.get(node.raw_op, 0) + 1
        return counts

    # ---- identity --------------------------------------------------------------------------
    def content_hash(self) -> str:
        """Hash of the network itself: independent of node names and node order.

        Weisfeiler-Lehman colour refinement over (op, attributes, shapes) labels, run until the
        partition stops refining, then a hash of the sorted colour multiset plus the edge count
        and the batch/input metadata that change the network's cost.
        """
        labels = [
            json.dumps(
                [n.op, sorted((k, _canon(v)) for k, v in n.attrs.items()),
                 _canon(n.input_shapes), _canon(n.output_shapes)],
                separators=(",", ":"),
            )
            for n in self.nodes
        ]
        colours = [_h(s) for s in labels]
        parents, children = self.parents(), self.children()
        n_classes = len(set(colours))
        for _ in range(len(self.nodes)):
            colours = [
                _h(c + "|" + ",".join(sorted(colours[p] for p in parents[i]))
                   + "|" + ",".join(sorted(colours[q] for q in children[i])))
                for i, c in enumerate(colours)
            ]
            new_classes = len(set(colours))
            if new_classes == n_classes:
                break
            n_classes = new_classes
        head = json.dumps(
            [IR_VERSION, len(self.edges), _canon(self.meta.get("input_shape")),
             self.meta.get("batch_size")],
            separators=(",", ":"),
        )
        return _h(head + ";" + ";".join(sorted(colours)))

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "ir_version": IR_VERSION,
            "meta": self.meta,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [list(e) for e in self.edges],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_canon)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchGraph:
        version = d.get("ir_version")
        if version != IR_VERSION:
            raise GraphError(f"IR version {version} is not supported (this is version {IR_VERSION})")
        meta = dict(d.get("meta", {}))
        if isinstance(meta.get("input_shape"), list):
            meta["input_shape"] = tuple(meta["input_shape"])
        return cls(
            nodes=[Node.from_dict(n) for n in d["nodes"]],
            edges=[(int(s), int(t)) for s, t in d["edges"]],
            meta=meta,
        )

    @classmethod
    def from_json(cls, text: str) -> ArchGraph:
        return cls.from_dict(json.loads(text))

    def to_networkx(self) -> nx.DiGraph:
        import networkx as nx

        g = nx.DiGraph(**self.meta)
        for i, node in enumerate(self.nodes):
            g.add_node(i, **node.to_dict())
        g.add_edges_from(self.edges)
        return g


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _topological_order(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Kahn's algorithm, stable (ties keep the original order); raises on a cycle."""
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for s, d in set(edges):
        succ[s].append(d)
        indeg[d] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != n:
        raise GraphError("the graph has a cycle; an ArchGraph must be a DAG")
    return order


__all__ = ["IR_VERSION", "ArchGraph", "GraphError", "Node", "Shape"]
