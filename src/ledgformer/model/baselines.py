"""Neural baselines in LeDG-Former's harness: ``mlp``, ``gin``, ``graphsage``, ``static_transformer``.

They consume exactly LeDG-Former's featurisation (``Batch``: op ids, numeric node features,
relation matrix, graph totals ``glob``) but none of its contributions (node texts, dynamic
relation bias, hardware text). Adjacency comes from the relation matrix:
``rel[b, i, j] == REL["parent"]`` means node j feeds node i. Latency variants take the numeric
hardware card features, so each baseline is one multi-device model like LeDG-Former.

Importing this module also registers the closed-form baselines of ``ledgformer.model.classical``
(``flops``, ``gbdt``), because the model registry imports this module only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model import classical
from ledgformer.model.features import GRAPH_FEATURES, N_OPS, NODE_FEATURES, REL, Batch, HardwareBatch
from ledgformer.model.registry import PredictorModel, register_model

#: card features reach ~11 (log2 of compute units); this keeps network inputs near [0, 3]
HW_SCALE = 0.25


def mlp(d_in: int, d_hidden: int, d_out: int, n_hidden: int = 1, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(n_hidden):
        layers += [nn.Linear(d_in if k == 0 else d_hidden, d_hidden), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(d_hidden if n_hidden else d_in, d_out))


def neighbours(batch: Batch, direction: str) -> list[torch.Tensor]:
    """Aggregation matrices: parents (messages along edges) and, for "both", children too."""
    par = classical.parent_matrix(batch)
    return [par, par.transpose(1, 2)] if direction == "both" else [par]


def pool(h: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Masked sum or mean over nodes: [B, N, d] -> [B, d]."""
    m = mask[..., None].to(h.dtype)
    total = (h * m).sum(1)
    return total if how == "sum" else total / m.sum(1).clamp(min=1.0)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LedgformerError(f"model.{name} must be one of {allowed}, got {value!r}")
    return value


class NeuralBaseline(PredictorModel):
    """Shared parts: task check, node encoder, head over [graph vector, glob, card embedding].

    Subclasses accept ``text_dim`` / ``hw_text_dim`` because the trainer passes them to every
    model; the baselines read no texts (that is LeDG-Former's addition).
    """

    def __init__(self, task: str, d_model: int, use_hardware: bool | None, use_glob: bool,
                 dropout: float, cfg: dict[str, Any], node_encoder: bool = True) -> None:
        super().__init__()
        self.task = _choice("task", task, ("latency", "accuracy"))
        self._cfg = dict(cfg)
        self.has_hw = task == "latency" if use_hardware is None else bool(use_hardware)
        self.use_glob = use_glob
        if node_encoder:
            self.op_emb = nn.Embedding(N_OPS, d_model)
            self.num_proj = nn.Linear(len(NODE_FEATURES), d_model)
        self.hw_mlp = mlp(len(FEATURE_NAMES), d_model, d_model) if self.has_hw else None
        d_head = d_model + (len(GRAPH_FEATURES) if use_glob else 0) + (d_model if self.has_hw else 0)
        self.head = mlp(d_head, d_model, 1, n_hidden=2, dropout=dropout)

    def config_dict(self) -> dict[str, Any]:
        return dict(self._cfg)

    def node_inputs(self, batch: Batch) -> torch.Tensor:
        """Op embedding + projected numeric features, zero on padding: [B, N, d]."""
        x = self.op_emb(batch.op) + self.num_proj(batch.num)
        return x * batch.mask[..., None].to(x.dtype)

    def extras(self, batch: Batch, hw: HardwareBatch | None) -> list[torch.Tensor]:
        out = [batch.glob.to(batch.num.dtype)] if self.use_glob else []
        if self.hw_mlp is not None:
            if hw is None:
                raise LedgformerError(f"the {type(self).__name__} latency model needs hardware cards (hw)")
            out.append(self.hw_mlp(hw.feat.to(batch.num.dtype) * HW_SCALE))
        return out

    def readout(self, graph_vec: torch.Tensor, batch: Batch, hw: HardwareBatch | None) -> torch.Tensor:
        x = torch.cat([graph_vec, *self.extras(batch, hw)], dim=-1)
        return self.unscale(self.head(x).squeeze(-1))


@register_model("mlp")
class MLPBaseline(NeuralBaseline):
    """MLP on a fixed-length architecture encoding (+ card features for latency).

    ``encoding="position"``: per node slot (up to ``max_nodes``) the op one-hot and numeric
    features, plus the flattened parent adjacency: the standard "MLP on adjacency + op
    encoding" of NAS cells (NB201: 8 slots). ``encoding="counts"``: per-op-type counts and
    MAC/param/byte sums, depth, width and graph totals (``classical.static_features``), for
    whole networks of any size.
    """

    def __init__(self, task: str = "accuracy", encoding: str = "counts", max_nodes: int = 8,
                 d_model: int = 128, n_layers: int = 3, dropout: float = 0.0,
                 use_hardware: bool | None = None,
                 text_dim: int | None = None, hw_text_dim: int | None = None) -> None:
        cfg = {"task": task, "encoding": encoding, "max_nodes": max_nodes, "d_model": d_model,
               "n_layers": n_layers, "dropout": dropout, "use_hardware": use_hardware}
        super().__init__(task, d_model, use_hardware, False, dropout, cfg, node_encoder=False)
        self.encoding = _choice("encoding", encoding, ("counts", "position"))
        self.max_nodes = max_nodes
        if encoding == "position":
            d_in = max_nodes * (N_OPS + len(NODE_FEATURES)) + max_nodes * max_nodes
        else:
            d_in = len(classical.static_feature_names())
        self.body = mlp(d_in, d_model, d_model, n_hidden=max(n_layers - 1, 1), dropout=dropout)

    def encode(self, batch: Batch) -> torch.Tensor:
        if self.encoding == "counts":
            return classical.static_features(batch).to(batch.num.dtype)
        return classical.position_encoding(batch, self.max_nodes)

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        return self.readout(torch.relu(self.body(self.encode(batch))), batch, hw)


class MaskedBatchNorm(nn.Module):
    """Batch norm over the real nodes of a padded batch (padding would skew the statistics)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return h.masked_scatter(mask[..., None], self.bn(h[mask]))


class GINLayer(nn.Module):
    """``h' = MLP((1 + eps) h + sum of neighbour messages)``; separate linear maps per direction;
    ``batch_norm`` makes it Xu et al.'s layer (``MLP = Linear, BN, ReLU, Linear``, then BN, ReLU);
    ``residual`` adds ``h`` back (not in the original GIN)."""

    def __init__(self, d: int, n_dirs: int, separate: bool, residual: bool = False,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.eps = nn.Parameter(torch.zeros(()))
        maps = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(n_dirs))
        self.dir_maps = maps if separate else None
        self.mlp = mlp(d, d, d)  # Linear, ReLU, Dropout(0), Linear: the norms go between
        self.norms = nn.ModuleList(MaskedBatchNorm(d) for _ in range(2)) if batch_norm else None

    def forward(self, h: torch.Tensor, adjs: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        agg = (1.0 + self.eps) * h
        for k, a in enumerate(adjs):
            msg = a @ h
            agg = agg + (self.dir_maps[k](msg) if self.dir_maps is not None else msg)
        x = self.mlp[0](agg)
        if self.norms is not None:
            x = self.norms[0](x, mask)
        x = self.mlp[-1](torch.relu(x))
        if self.norms is not None:
            x = self.norms[1](x, mask)
        out = torch.relu(x) * mask[..., None].to(h.dtype)
        return h + out if self.residual else out


@register_model("gin")
class GINBaseline(NeuralBaseline):
    """Graph isomorphism network on the cell / operator graph (sum aggregation, pooled readout).

    ``jk=True`` pools the node states of every layer (input embedding included) and
    concatenates them, the graph-level readout of Xu et al. (ICLR 2019); otherwise the last
    layer alone is pooled.
    """

    def __init__(self, task: str = "accuracy", d_model: int = 64, n_layers: int = 4, readout: str = "sum",
                 direction: str = "both", separate: bool = True, residual: bool = False, dropout: float = 0.0,
                 batch_norm: bool = False, jk: bool = False, use_glob: bool = True,
                 use_hardware: bool | None = None,
                 text_dim: int | None = None, hw_text_dim: int | None = None) -> None:
        cfg = {"task": task, "d_model": d_model, "n_layers": n_layers, "readout": readout,
               "direction": direction, "separate": separate, "residual": residual, "dropout": dropout,
               "batch_norm": batch_norm, "jk": jk, "use_glob": use_glob, "use_hardware": use_hardware}
        super().__init__(task, d_model, use_hardware, use_glob, dropout, cfg)
        self.pool = _choice("readout", readout, ("sum", "mean"))
        self.direction = _choice("direction", direction, ("both", "in"))
        self.jk = jk
        n_dirs = 2 if direction == "both" else 1
        self.layers = nn.ModuleList(GINLayer(d_model, n_dirs, separate, residual, batch_norm)
                                    for _ in range(n_layers))
        if jk:  # the head sees every layer's pooled state
            d_head = self.head[0].in_features + n_layers * d_model
            self.head = mlp(d_head, d_model, 1, n_hidden=2, dropout=dropout)

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        h, adjs = self.node_inputs(batch), neighbours(batch, self.direction)
        pooled = [pool(h, batch.mask, self.pool)] if self.jk else []
        for layer in self.layers:
            h = layer(h, adjs, batch.mask)
            if self.jk:
                pooled.append(pool(h, batch.mask, self.pool))
        return self.readout(torch.cat(pooled, -1) if self.jk else pool(h, batch.mask, self.pool), batch, hw)


@register_model("graphsage")
class GraphSAGEBaseline(NeuralBaseline):
    """NNLQP-style GraphSAGE: ``h' = ReLU(W_self h + W_nbr mean(neighbours))``, sum readout + MLP.

    ``direction="in"`` aggregates over parents only (messages along the directed edges, as a
    PyG ``SAGEConv`` on the ONNX graph does); "both" adds children to the mean.
    """

    def __init__(self, task: str = "latency", d_model: int = 64, n_layers: int = 3, readout: str = "sum",
                 direction: str = "in", dropout: float = 0.0, use_glob: bool = True,
                 use_hardware: bool | None = None,
                 text_dim: int | None = None, hw_text_dim: int | None = None) -> None:
        cfg = {"task": task, "d_model": d_model, "n_layers": n_layers, "readout": readout,
               "direction": direction, "dropout": dropout, "use_glob": use_glob, "use_hardware": use_hardware}
        super().__init__(task, d_model, use_hardware, use_glob, dropout, cfg)
        self.pool = _choice("readout", readout, ("sum", "mean"))
        self.direction = _choice("direction", direction, ("both", "in"))
        self.self_maps = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layers))
        self.nbr_maps = nn.ModuleList(nn.Linear(d_model, d_model, bias=False) for _ in range(n_layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        h = self.node_inputs(batch)
        a = torch.stack(neighbours(batch, self.direction)).sum(0)
        a = a / a.sum(-1, keepdim=True).clamp(min=1.0)
        m = batch.mask[..., None].to(h.dtype)
        for ws, wn in zip(self.self_maps, self.nbr_maps, strict=True):
            h = self.drop(torch.relu(ws(h) + wn(a @ h))) * m
        return self.readout(pool(h, batch.mask, self.pool), batch, hw)


class MaskedBlock(nn.Module):
    """Pre-norm transformer block whose attention is restricted by a fixed boolean mask."""

    def __init__(self, d: int, n_heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.h, self.p = n_heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Linear(ffn_mult * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        x = x + self.drop(self.proj(o.transpose(1, 2).reshape(b, s, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


@register_model("static_transformer")
class StaticTransformerBaseline(NeuralBaseline):
    """NAR-Former-V2-style transformer: node tokens attend to self, parents and children only.

    The attention mask is fixed by the graph (no learned relation bias, no state-dependent
    term, no global or hardware token); card features join at the readout for latency.
    """

    def __init__(self, task: str = "latency", d_model: int = 64, n_layers: int = 4, n_heads: int = 4,
                 ffn_mult: int = 2, readout: str = "mean", dropout: float = 0.0, use_glob: bool = True,
                 use_hardware: bool | None = None,
                 text_dim: int | None = None, hw_text_dim: int | None = None) -> None:
        cfg = {"task": task, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
               "ffn_mult": ffn_mult, "readout": readout, "dropout": dropout, "use_glob": use_glob,
               "use_hardware": use_hardware}
        if d_model % n_heads:
            raise LedgformerError(f"model.d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        super().__init__(task, d_model, use_hardware, use_glob, dropout, cfg)
        self.pool = _choice("readout", readout, ("sum", "mean"))
        self.blocks = nn.ModuleList(MaskedBlock(d_model, n_heads, ffn_mult, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)

    def attention_bias(self, batch: Batch, dtype: torch.dtype) -> torch.Tensor:
        """0 where node i may attend to node j (self, parent, child), -inf elsewhere: [B, 1, N, N]."""
        r = batch.rel
        allowed = (r == REL["self"]) | (r == REL["parent"]) | (r == REL["child"])
        allowed = allowed & batch.mask[:, None, :]
        allowed = allowed | torch.eye(r.shape[1], dtype=torch.bool, device=r.device)  # padding rows
        bias = torch.zeros(allowed.shape, dtype=dtype, device=r.device)
        return bias.masked_fill(~allowed, float("-inf"))[:, None]

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        x = self.node_inputs(batch)
        bias = self.attention_bias(batch, x.dtype)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.readout(pool(self.ln_f(x), batch.mask, self.pool), batch, hw)


__all__ = [
    "GINBaseline", "GINLayer", "GraphSAGEBaseline", "MLPBaseline", "MaskedBatchNorm", "MaskedBlock",
    "NeuralBaseline", "StaticTransformerBaseline", "neighbours", "pool",
]
