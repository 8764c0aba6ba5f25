"""ArchGraph -> tensors for the predictors, and padded batch collation.

One graph becomes a :class:`GraphTensors` (op ids, numeric node features, text ids, the pairwise
structural relation matrix, graph-level totals). Node texts are not stored per graph: each graph
holds indices into one shared text table (unique texts embedded once, see
``ledgformer.embed.cache``), because a data set of 15,625 whole networks has only a few hundred
distinct node texts. :func:`collate` pads graphs into a :class:`Batch` with a node mask.

Every model (LeDG-Former and the baselines) takes ``(Batch, HardwareBatch | None)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph, Node
from ledgformer.graph.ops import OP_TYPES, op_index

#: structural relation of key node j to query node i (``rel[i, j]``); the last two are tokens
RELATIONS: tuple[str, ...] = (
    "self", "parent", "child", "grandparent", "grandchild", "sibling", "ancestor", "descendant",
    "unrelated", "global", "hardware",
)
REL = {name: i for i, name in enumerate(RELATIONS)}
N_OPS = len(OP_TYPES)

NODE_FEATURES: tuple[str, ...] = (
    "log_macs", "log_flops", "log_params", "log_mem_bytes", "log_out_numel", "out_rank",
    "log_out_d0", "log_out_d1", "log_out_d2", "log_out_d3", "kernel_h", "kernel_w", "stride",
    "log_groups", "log_in_channels", "log_out_channels", "n_inputs", "in_degree", "out_degree",
    "depthwise",
)
GRAPH_FEATURES: tuple[str, ...] = (
    "log_macs", "log_flops", "log_params", "log_mem_bytes", "log_nodes", "log_edges",
    "log_batch", "log_input_hw",
)


def _lg(v: float, scale: float) -> float:
    return math.log1p(max(float(v), 0.0)) / scale


def _pair(value: object, default: int = 1) -> tuple[int, int]:
    if value is None:
        return default, default
    if isinstance(value, (tuple, list)):
        vals = [int(v) for v in value] or [default]
        return vals[0], vals[-1]
    return int(value), int(value)  # type: ignore[call-overload]


def node_features(node: Node, in_degree: int, out_degree: int) -> list[float]:
    """Numeric features of one node (``NODE_FEATURES`` order), log-scaled to roughly [0, 2]."""
    a = node.attrs
    out = tuple(node.output_shapes[0]) if node.output_shapes else ()
    inp = tuple(node.input_shapes[0]) if node.input_shapes else ()
    dims = [1] * max(0, 4 - len(out)) + [int(d) for d in out[-4:]]
    numel = math.prod(int(d) for d in out) if out else 0
    kh, kw = _pair(a.get("kernel"), 0)
    stride = _pair(a.get("stride"))[0]
    groups = int(a.get("groups", 1) or 1)
    cin = int(a.get("in_channels", inp[1] if len(inp) > 1 else 0) or 0)
    cout = int(a.get("out_channels", out[1] if len(out) > 1 else 0) or 0)
    return [
        _lg(node.macs, 20), _lg(node.flops, 20), _lg(node.params, 16), _lg(node.mem_bytes, 20),
        _lg(numel, 16), len(out) / 4, *(_lg(d, 8) for d in dims), kh / 7, kw / 7, stride / 4,
        math.log2(groups) / 10, _lg(cin, 8), _lg(cout, 8), len(node.input_shapes) / 4,
        in_degree / 4, out_degree / 4, float(node.op == "conv" and cin > 1 and groups == cin),
    ]


def graph_features(graph: ArchGraph) -> list[float]:
    """Graph totals (``GRAPH_FEATURES`` order), log-scaled; they feed the global token."""
    shape = graph.meta.get("input_shape") or ()
    hw = int(shape[-1]) if len(shape) >= 3 else 0
    return [
        _lg(graph.macs, 20), _lg(graph.flops, 20), _lg(graph.params, 16), _lg(graph.mem_bytes, 20),
        _lg(len(graph), 6), _lg(len(graph.edges), 6), _lg(graph.meta.get("batch_size") or 1, 6),
        _lg(hw, 6),
    ]


def relations(graph: ArchGraph) -> np.ndarray:
    """``rel[i, j]``: index into ``RELATIONS`` of node j as seen from node i (int8, [n, n]).

    Precedence when several apply: self > parent/child > grandparent/grandchild > sibling >
    ancestor/descendant > unrelated. Uses reachability, so it costs O(n^2) memory (fine to ~5k).
    """
    n = len(graph)
    par = np.zeros((n, n), dtype=bool)  # par[i, j]: j is a parent of i
    for s, d in graph.edges:
        par[d, s] = True
    chi = np.ascontiguousarray(par.T)  # chi[i, j]: j is a child of i
    # anc[i, j]: j is an ancestor of i (nodes are in topological order); row loops, not float
    # matmuls: BLAS threads on tiny matrices made this 6x slower on a busy machine
    anc, grand, sib = par.copy(), np.zeros_like(par), np.zeros_like(par)
    parents = graph.parents()
    for i in range(n):
        if parents[i]:
            anc[i] |= anc[parents[i]].any(axis=0)
            grand[i] = par[parents[i]].any(axis=0)
            sib[i] = chi[parents[i]].any(axis=0)
    rel = np.full((n, n), REL["unrelated"], dtype=np.int8)
    for mask, name in ((anc.T, "descendant"), (anc, "ancestor"), (sib, "sibling"),
                       (grand.T, "grandchild"), (grand, "grandparent"), (par.T, "child"),
                       (par, "parent")):
        rel[mask] = REL[name]
    np.fill_diagonal(rel, REL["self"])
    return rel


@dataclass
class GraphTensors:
    """One graph as arrays; ``text_ids`` index the shared text table of its data set."""

    op: np.ndarray  # [n] int64
    num: np.ndarray  # [n, len(NODE_FEATURES)] float32
    text_ids: np.ndarray  # [n] int64
    rel: np.ndarray  # [n, n] int8
    glob: np.ndarray  # [len(GRAPH_FEATURES)] float32
    #: graph-level inputs from outside the graph (zero-cost proxies, ``data.proxies``), [P] float32
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.op)

    def permuted(self, perm: Sequence[int]) -> GraphTensors:
        """The same graph with its nodes listed in ``perm`` order (for invariance checks)."""
        p = np.asarray(perm)
        return GraphTensors(self.op[p], self.num[p], self.text_ids[p], self.rel[np.ix_(p, p)], self.glob,
                            self.extra)


class TextTable:
    """Unique node texts -> row ids; ``embeddings(encoder)`` embeds them once (disk-cached)."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def ids(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray([self.rows.setdefault(t, len(self.rows)) for t in texts], dtype=np.int64)

    def texts(self) -> list[str]:
        return list(self.rows)

    def embeddings(self, encoder: str) -> np.ndarray:
        from ledgformer.embed.cache import embed_texts
        from ledgformer.text.templates import TEMPLATE_VERSION

        return embed_texts(self.texts(), encoder, namespace=f"tpl{TEMPLATE_VERSION}")


def graph_tensors(graph: ArchGraph, table: TextTable,
                  texts: Callable[[ArchGraph], list[str]] | None = None) -> GraphTensors:
    """Featurise one graph; its node texts are registered in ``table``."""
    if texts is None:
        from ledgformer.text.templates import graph_texts as texts
    parents, children = graph.parents(), graph.children()
    num = [node_features(nd, len(parents[i]), len(children[i])) for i, nd in enumerate(graph.nodes)]
    return GraphTensors(
        op=np.asarray([op_index(nd.op) for nd in graph.nodes], dtype=np.int64),
        num=np.asarray(num, dtype=np.float32).reshape(len(graph), len(NODE_FEATURES)),
        text_ids=table.ids(texts(graph)),
        rel=relations(graph),
        glob=np.asarray(graph_features(graph), dtype=np.float32),
    )


@dataclass
class Batch:
    """Padded graphs: ``mask[b, i]`` is True for real nodes; ``text_table`` is shared by all."""

    op: torch.Tensor  # [B, N] long
    num: torch.Tensor  # [B, N, F]
    text_ids: torch.Tensor  # [B, N] long
    rel: torch.Tensor  # [B, N, N] long
    mask: torch.Tensor  # [B, N] bool
    glob: torch.Tensor  # [B, G]
    text_table: torch.Tensor  # [V, D]
    extra: torch.Tensor | None = None  # [B, P] (``GraphTensors.extra``), None when P = 0

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    def __len__(self) -> int:
        return self.op.shape[0]

    def index(self, rows: torch.Tensor) -> Batch:
        """Rows ``rows`` of the batch (repeats allowed); the text table is shared."""
        return Batch(self.op[rows], self.num[rows], self.text_ids[rows], self.rel[rows], self.mask[rows],
                     self.glob[rows], self.text_table, None if self.extra is None else self.extra[rows])


@dataclass
class HardwareBatch:
    """One hardware card per example: its text embedding and numeric features (``FEATURE_NAMES``)."""

    text: torch.Tensor  # [B, Dh]
    feat: torch.Tensor  # [B, Fh]

    def to(self, device: torch.device | str) -> HardwareBatch:
        return HardwareBatch(self.text.to(device), self.feat.to(device))

    def index(self, idx: torch.Tensor) -> HardwareBatch:
        return HardwareBatch(self.text[idx], self.feat[idx])


def collate(items: Sequence[GraphTensors], text_table: torch.Tensor) -> Batch:
    """Pad ``items`` to the largest graph; padding gets op 0, zero features, relation 'unrelated'."""
    b, n = len(items), max(len(g) for g in items)
    op = np.zeros((b, n), np.int64)
    tid = np.zeros((b, n), np.int64)
    num = np.zeros((b, n, len(NODE_FEATURES)), np.float32)
    rel = np.full((b, n, n), REL["unrelated"], np.int64)
    mask = np.zeros((b, n), bool)
    for k, g in enumerate(items):
        m = len(g)
        op[k, :m], tid[k, :m], num[k, :m], rel[k, :m, :m], mask[k, :m] = g.op, g.text_ids, g.num, g.rel, True
    glob = np.stack([g.glob for g in items])
    n_extra = {len(g.extra) for g in items}
    if len(n_extra) > 1:
        raise LedgformerError(f"graphs with different numbers of proxy inputs in one batch: "
                              f"{sorted(n_extra)}")
    extra = torch.from_numpy(np.stack([g.extra for g in items])) if n_extra != {0} else None
    return Batch(torch.from_numpy(op), torch.from_numpy(num), torch.from_numpy(tid), torch.from_numpy(rel),
                 torch.from_numpy(mask), torch.from_numpy(glob), text_table, extra)


def hardware_tensors(cards: Sequence[str], encoder: str) -> HardwareBatch:
    """Text embeddings and numeric features of hardware cards (names or YAML paths), one row each."""
    from ledgformer.embed.cache import embed_texts
    from ledgformer.hardware import TEXT_VERSION, load_card

    loaded = [load_card(c) for c in cards]
    text = embed_texts([c.to_text() for c in loaded], encoder, namespace=f"card{TEXT_VERSION}")
    feat = np.stack([c.features() for c in loaded]).astype(np.float32)
    return HardwareBatch(torch.from_numpy(np.asarray(text, np.float32)), torch.from_numpy(feat))


#: node features summed per op type by :func:`op_totals`: (name in NODE_FEATURES, its log scale)
COST_SUMS: tuple[tuple[str, float], ...] = (
    ("log_macs", 20.0), ("log_params", 16.0), ("log_mem_bytes", 20.0),
)


@torch.no_grad()
def op_totals(batch: Batch) -> torch.Tensor:
    """Per op type, the log count and log total MACs / params / memory bytes of the real nodes,
    scaled to roughly [0, 2]: [B, (1 + len(COST_SUMS)) * N_OPS]. Padding adds nothing and the
    node order does not matter (GBDT's graph encoding; LeDG-Former's ``op_totals`` input)."""
    m = batch.mask.double()
    counts = torch.zeros(m.shape[0], N_OPS, dtype=torch.float64, device=m.device).scatter_add_(1, batch.op, m)
    cols = [torch.log1p(counts) / 6.0]
    for feat, scale in COST_SUMS:
        per_node = torch.expm1(batch.num[..., NODE_FEATURES.index(feat)].double() * scale) * m
        sums = torch.zeros_like(counts).scatter_add_(1, batch.op, per_node)
        cols.append(torch.log1p(sums) / scale)
    return torch.cat(cols, dim=1).to(batch.num.dtype)


__all__ = [
    "COST_SUMS", "GRAPH_FEATURES", "NODE_FEATURES", "N_OPS", "REL", "RELATIONS", "Batch", "GraphTensors",
    "HardwareBatch", "TextTable", "collate", "graph_features", "graph_tensors", "hardware_tensors",
    "node_features", "op_totals", "relations",
]
