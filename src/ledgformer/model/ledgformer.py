"""LeDG-Former: a language-embedded dynamic graph transformer over operator graphs.

Sequence per graph: ``[global token, hardware token (latency tasks), node tokens ...]``.

* Node token = projected text embedding of the node's description + MLP of its numeric features
  (log costs, shapes, kernel/stride/groups/channels) + a learned op-type embedding.
* Every block adds a per-head attention bias for each token pair: a learned bias of their
  structural relation (self, parent, child, grandparent, grandchild, sibling, ancestor,
  descendant, unrelated, global, hardware) plus, when ``dynamic_bias`` is on, a low-rank
  bilinear score of the *current* states (h_i, h_j) gated per head by the relation. The effective
  adjacency therefore changes with the input and from layer to layer. With ``local_mp`` each
  block also sums its parents' and children's states first (a GIN-style step along the edges).
* The hardware token (card text embedding + MLP of the card's numeric features; with
  ``hw_features: setting`` only what the setting is, its speed left to the roofline's card
  figures) attends to the nodes and is attended by them, so one model serves every device: an
  unseen device needs only its card.
* Latency readout: log of a sum of per-node positive costs (logsumexp of node scores) plus a
  graph-level correction: latency is close to additive over operators. With ``roofline`` each
  node's cost is a learned factor times MACs / P + bytes / B, P and B read from the hardware
  token, so magnitudes come from the operator costs rather than being learned from scratch; with
  ``roofline_card`` P and B start from the card's own peak figures where it states them; with
  ``roofline_overhead`` each node also pays a fixed overhead read from the hardware token; with
  ``node_cost: token`` the node's cost factor reads its own input token, not its final state.
  Accuracy readout: MLP of the global token and the mean node state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Any

import torch
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model.features import (
    COST_SUMS,
    GRAPH_FEATURES,
    N_OPS,
    NODE_FEATURES,
    REL,
    RELATIONS,
    Batch,
    HardwareBatch,
    op_totals,
)
from ledgformer.model.ledgformer_config import LeDGFormerConfig
from ledgformer.model.registry import PredictorModel, register_model
from ledgformer.model.relation_gather import attention, dynamic_bias, gather_relations, lookup


def op_totals_dim() -> int:
    return (1 + len(COST_SUMS)) * N_OPS


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class RelationBias(nn.Module):
    """Per-head attention bias from the pair's relation and (optionally) their current states."""

    def __init__(self, cfg: LeDGFormerConfig) -> None:
        super().__init__()
        self.h, self.r = cfg.n_heads, cfg.dyn_rank
        self.dynamic = cfg.dynamic_bias
        # columns: static bias per head, then (dynamic only) the gate of the state score per head
        table = torch.zeros(len(RELATIONS), cfg.n_heads * (2 if self.dynamic else 1))
        if self.dynamic:
            table[:, cfg.n_heads:] = cfg.dyn_gate_init
            self.pair = nn.Linear(cfg.d_model, 2 * cfg.n_heads * cfg.dyn_rank, bias=False)
        self.table = nn.Parameter(table)

    def forward(self, h: torch.Tensor, rel: torch.Tensor,
                per_rel: torch.Tensor | None = None) -> torch.Tensor:
        """``h`` [B, S, d], ``rel`` [B, S, S] relation ids -> bias [B, H, S, S]; ``per_rel``: this
        block's ``table[rel]`` as [B, C, S, S] when the caller gathered it already (``lookup``)."""
        if not self.dynamic:
            return gather_relations(self.table, rel) if per_rel is None else per_rel
        b, s, _ = h.shape
        a, c = self.pair(h).view(b, s, 2, self.h, self.r).permute(2, 0, 3, 1, 4)
        score = a @ c.transpose(-1, -2) / math.sqrt(self.r)
        if per_rel is None:
            return dynamic_bias(self.table, rel, score)
        return per_rel[:, : self.h] + per_rel[:, self.h:] * score


class Block(nn.Module):
    """Pre-norm transformer block with the relation/dynamic bias as ``attn_mask``."""

    def __init__(self, cfg: LeDGFormerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.h, self.p = cfg.n_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        # no qkv bias: a key bias has zero true gradient (softmax shift), which Adam turns into noise
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d)
        self.bias = RelationBias(cfg)
        self.ffn = mlp(d, cfg.ffn_mult * d, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.ln_loc = nn.LayerNorm(d) if cfg.local_mp else None
        self.local = mlp(3 * d, cfg.ffn_mult * d, d) if cfg.local_mp else None

    def forward(self, x: torch.Tensor, rel: torch.Tensor, key_pad: torch.Tensor | None,
                per_rel: torch.Tensor | None = None) -> torch.Tensor:
        """``key_pad`` None: ``per_rel`` (from ``lookup``) holds the padding already."""
        b, s, d = x.shape
        if self.local is not None:  # rel[i, j] == parent: j is a parent of i (padding never is);
            hl = self.ln_loc(x)        # "child" is its transpose in a DAG, so one mask serves both
            par = (rel == REL["parent"]).to(hl.dtype)
            x = x + self.drop(self.local(torch.cat([hl, par @ hl, par.transpose(1, 2) @ hl], -1)))
        h = self.ln1(x)
        q, k, v = self.qkv(h).view(b, s, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        mask = self.bias(h, rel, per_rel)
        if key_pad is not None:
            mask = mask + key_pad
        p = self.p if self.training else 0.0
        o = attention(q, k, v, mask, p)
        x = x + self.drop(self.proj(o.transpose(1, 2).reshape(b, s, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


#: the card features a ``hw_features: setting`` token reads: what the setting is, not how fast
_SETTING_FIGURES = ("log_compute_units", "log_batch_size", "log_threads")
SETTING_FEATURES = tuple(f for f in FEATURE_NAMES if f in _SETTING_FIGURES or not f.startswith("log_"))

#: (feature column of the figure, of its missing flag, the figure's unit in MACs/ms or bytes/ms):
#: 1 TFLOP/s = 5e8 MACs/ms, 1 GB/s = 1e6 bytes/ms
_CARD_PB = tuple((FEATURE_NAMES.index(f"log_{name}"), FEATURE_NAMES.index(f"missing_{name}"), unit)
                 for name, unit in (("peak_tflops_fp32", 5e8), ("memory_bandwidth_gbs", 1e6)))


def card_log_pb(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cards' own log P (MACs/ms, from peak_tflops_fp32) and log B (bytes/ms, from
    memory_bandwidth_gbs) [B, 2], and whether the card states each [B, 2] (features are log1p)."""
    figure = torch.stack([torch.expm1(feat[:, v]).clamp(min=1e-9) * unit for v, _, unit in _CARD_PB], -1)
    known = torch.stack([feat[:, m] < 0.5 for _, m, _ in _CARD_PB], -1)
    return figure.log(), known


@register_model("ledgformer")
class LeDGFormer(PredictorModel):
    """The LeDG-Former predictor (see module docstring); config keys = ``LeDGFormerConfig``."""

    shares_graphs = True
    config_class = LeDGFormerConfig

    def __init__(self, config: LeDGFormerConfig | None = None, **kw: Any) -> None:
        super().__init__()
        known = {f.name for f in fields(LeDGFormerConfig)}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise LedgformerError(f"unknown LeDG-Former config key(s) {unknown}; known: {sorted(known)}")
        cfg = config or LeDGFormerConfig(**kw)
        self.config, self.task = cfg, cfg.task
        d = cfg.d_model
        self.text_proj = nn.Linear(cfg.text_dim, d) if cfg.use_text else None
        self.op_emb = nn.Embedding(N_OPS, d)
        self.num_mlp = mlp(len(NODE_FEATURES), d, d)
        self.glob_tok = nn.Parameter(torch.zeros(d))
        self.glob_mlp = mlp(len(GRAPH_FEATURES), d, d)
        self.totals_mlp = mlp(op_totals_dim(), d, d) if cfg.op_totals else None
        self.extra_mlp = mlp(cfg.n_extra, d, d) if cfg.n_extra else None
        self.has_hw = cfg.use_hardware
        if self.has_hw:
            self.hw_tok = nn.Parameter(torch.zeros(d))
            self.hw_mlp = mlp(len(FEATURE_NAMES), d, d)
            setting = cfg.hw_features == "setting"
            self.hw_text = nn.Linear(cfg.hw_text_dim, d) if cfg.hardware_text and not setting else None
            keep = [float(not setting or f in SETTING_FEATURES) for f in FEATURE_NAMES]
            self.register_buffer("hw_keep", torch.tensor(keep), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        n_pool = 3 if self.has_hw else 2
        self.graph_head = mlp(n_pool * d, d, 1)
        self.node_head = mlp(d + (d if self.has_hw else 0), d, 1) if cfg.readout == "sum" else None
        self.ln_tok = nn.LayerNorm(d) if cfg.node_cost == "token" else None
        self.roofline = nn.Linear(d, 2) if cfg.roofline else None
        if self.roofline is not None:  # start at ~2e7 MACs/ms and 1e7 bytes/ms (a phone CPU core)
            nn.init.zeros_(self.roofline.weight)
            with torch.no_grad():
                self.roofline.bias.copy_(torch.tensor([math.log(2e7), math.log(1e7)]))
            # y_loc / y_scale as trained: a later affine change of them (the few-shot "scale"
            # recipe) then maps the roofline output as it maps a standardised one
            self.register_buffer("fit_stats", torch.tensor([0.0, 1.0]))
        # log efficiency of (P, B) against the card's peak figures: starts at 1/4 and 1/2
        self.roofline_card = nn.Linear(d, 2) if cfg.roofline_card else None
        if self.roofline_card is not None:
            nn.init.zeros_(self.roofline_card.weight)
            with torch.no_grad():
                self.roofline_card.bias.copy_(torch.tensor([math.log(0.25), math.log(0.5)]))
        # log of the per-node overhead O in ms: starts at 5 us (a CPU runtime's kernel launch)
        self.roofline_overhead = nn.Linear(d, 1) if cfg.roofline_overhead else None
        if self.roofline_overhead is not None:
            nn.init.zeros_(self.roofline_overhead.weight)
            nn.init.constant_(self.roofline_overhead.bias, math.log(5e-3))

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "fit_stats"  # roofline checkpoints written before the buffer existed
        if self.roofline is not None and key not in state_dict and prefix + "y_loc" in state_dict:
            state_dict[key] = torch.stack([state_dict[prefix + "y_loc"], state_dict[prefix + "y_scale"]])
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_target_stats(self, loc: float, scale: float) -> None:
        super().set_target_stats(loc, scale)
        if self.roofline is not None:
            self.fit_stats.copy_(torch.stack([self.y_loc, self.y_scale]))

    # ---- tokens ------------------------------------------------------------------------------
    def node_tokens(self, batch: Batch) -> torch.Tensor:
        x = self.op_emb(batch.op) + self.num_mlp(batch.num)
        if self.text_proj is not None:
            x = x + self.text_proj(batch.text_table)[batch.text_ids]
        return x

    def hardware_token(self, hw: HardwareBatch) -> torch.Tensor:
        t = self.hw_tok + self.hw_mlp(hw.feat * self.hw_keep)
        if self.hw_text is not None:
            t = t + self.hw_text(hw.text)
        return t

    @staticmethod
    def _sequence_rel(batch: Batch, n_tok: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Relation ids [B, S, S] and the key padding bias [B, 1, 1, S] of ``n_tok`` tokens + nodes."""
        b, n = batch.op.shape
        s, dev = n_tok + n, batch.op.device
        rel = torch.full((b, s, s), REL["global"], dtype=torch.long, device=dev)
        if n_tok == 2:
            rel[:, 1, :] = REL["hardware"]
            rel[:, :, 1] = REL["hardware"]
        rel[:, n_tok:, n_tok:] = batch.rel
        idx = torch.arange(n_tok, device=dev)
        rel[:, idx, idx] = REL["self"]
        valid = torch.cat([torch.ones(b, n_tok, dtype=torch.bool, device=dev), batch.mask], dim=1)
        key_pad = torch.zeros(b, 1, 1, s, dtype=batch.num.dtype, device=dev)
        return rel, key_pad.masked_fill(~valid[:, None, None, :], float("-inf"))

    def encode(self, batch: Batch) -> torch.Tensor:
        """States [B, 1 + N, d] (global token + nodes) after the device-independent blocks."""
        glob = self.glob_tok + self.glob_mlp(batch.glob)
        if self.totals_mlp is not None:
            glob = glob + self.totals_mlp(op_totals(batch))
        if self.extra_mlp is not None:
            if batch.extra is None or batch.extra.shape[1] != self.config.n_extra:
                got = 0 if batch.extra is None else batch.extra.shape[1]
                raise LedgformerError(f"this model reads {self.config.n_extra} proxy input(s) per graph "
                                      f"(data.proxies), the batch has {got}")
            glob = glob + self.extra_mlp(batch.extra)
        x = torch.cat([glob[:, None], self.node_tokens(batch)], 1)
        n_pre = self.config.n_layers - self.config.hw_layers if self.has_hw else self.config.n_layers
        if n_pre:
            rel, key_pad = self._sequence_rel(batch, 1)
            blocks = list(self.blocks[:n_pre])
            if torch.is_grad_enabled():
                for blk in blocks:
                    x = blk(x, rel, key_pad)
            else:  # inference: every block's relation bias gathered at once (same values, faster)
                for blk, per_rel in zip(blocks, lookup([b.bias for b in blocks], rel, key_pad), strict=True):
                    x = blk(x, rel, None, per_rel)
        return x

    def decode(self, x: torch.Tensor, batch: Batch, hw: HardwareBatch | None) -> torch.Tensor:
        """The hardware blocks and the readout on ``encode``'s states (rows may repeat a graph)."""
        return self._combine(*self.decode_parts(x, batch, hw))

    def _combine(self, out: torch.Tensor, score: torch.Tensor | None) -> torch.Tensor:
        """The prediction from the graph term and the node scores (model space)."""
        if self.roofline is not None:  # scores are log ms already; out a standardised correction
            loc, scale = self.fit_stats
            raw = torch.logsumexp(score, dim=1) + out * scale
            return (raw - loc) * (self.y_scale / scale) + self.y_loc  # = raw until y_* change
        if score is not None:
            out = out + torch.logsumexp(score, dim=1)
        return self.unscale(out)

    def decode_parts(self, x: torch.Tensor, batch: Batch,
                     hw: HardwareBatch | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(graph-level term [B], per-node scores [B, N] or None), before ``unscale``.

        With the sum readout the prediction is ``unscale(term + logsumexp(scores))``, so
        ``softmax(scores)`` is each node's share of the predicted cost (padding scores are -inf).
        """
        t = 1
        if self.has_hw:
            if hw is None:
                raise LedgformerError("this model has a hardware token: pass the hardware cards")
            x = torch.cat([x[:, :1], self.hardware_token(hw)[:, None], x[:, 1:]], dim=1)
            t = 2
            if self.config.hw_layers:
                rel, key_pad = self._sequence_rel(batch, t)
                for blk in self.blocks[self.config.n_layers - self.config.hw_layers:]:
                    x = blk(x, rel, key_pad)
        x = self.ln_f(x)
        nodes, m = x[:, t:], batch.mask[..., None].to(x.dtype)
        mean = (nodes * m).sum(1) / m.sum(1).clamp(min=1.0)
        pooled = [x[:, 0], mean] + ([x[:, 1]] if self.has_hw else [])
        out = self.graph_head(torch.cat(pooled, dim=-1)).squeeze(-1)
        if self.node_head is None:
            return out, None
        nodes = self._cost_states(nodes, batch)
        feats = torch.cat([nodes, x[:, 1:2].expand_as(nodes)], -1) if self.has_hw else nodes
        score = self.node_head(feats).squeeze(-1)
        if self.roofline is not None:
            score = score + self._roofline_term(self._log_work(batch), x[:, 1], hw)
        return out, score.masked_fill(~batch.mask, float("-inf"))

    def _cost_states(self, nodes: torch.Tensor, batch: Batch) -> torch.Tensor:
        """What the node-cost head reads: the final node states, or (``node_cost: token``) each
        node's own input token, so its cost cannot depend on the rest of the graph."""
        return nodes if self.ln_tok is None else self.ln_tok(self.node_tokens(batch))

    @staticmethod
    def _log_work(batch: Batch) -> torch.Tensor:
        """[B, N, 2]: each node's log1p(MACs) and log1p(bytes) (features are log1p / 20)."""
        idx = [NODE_FEATURES.index("log_macs"), NODE_FEATURES.index("log_mem_bytes")]
        return batch.num[..., idx] * 20.0

    def _roofline_term(self, work: torch.Tensor, hw_state: torch.Tensor,
                       hw: HardwareBatch | None = None) -> torch.Tensor:
        """log(MACs / P + bytes / B [+ O]) per node [B, N], P, B (and O) read from the hardware
        states [B, d] (with ``roofline_card``: the card's peak figures x a learned efficiency,
        where it has them)."""
        log_pb = self.roofline(hw_state)  # [B, 2]: log MACs/ms, log bytes/ms
        if self.roofline_card is not None and hw is not None:
            card, known = card_log_pb(hw.feat)
            log_pb = torch.where(known, card + self.roofline_card(hw_state), log_pb)
        terms = work - log_pb[:, None]
        if self.roofline_overhead is not None:
            log_o = self.roofline_overhead(hw_state)[:, None].expand(*terms.shape[:2], 1)
            terms = torch.cat([terms, log_o], -1)
        return torch.logsumexp(terms, dim=-1)

    # ---- late fusion, split: ranking a space for many devices ----------------------------------
    def late_fusion_parts(self, x: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The device-independent part of ``decode`` when ``hw_layers == 0`` (card only in the readout).

        The readout's first layers are linear in concatenations (node, card) and (global, mean,
        card), so their node and graph parts are computed once per graph here: returns
        (graph part [B, h], node part [B, N, h]) for ``late_fusion_readout``; with the roofline
        prior the node part carries each node's log MACs and log bytes as four more columns, a
        float16 value and its remainder, so parts stored in float16 (the encoding cache) keep
        them to ~1e-5 (float16 alone would move a node's cost by up to ~1 %).
        ``x``: ``encode``'s states of ``batch``.
        """
        if not self.has_hw or self.config.hw_layers or self.node_head is None:
            raise LedgformerError("late_fusion_parts needs a latency model with hw_layers=0 and sum readout")
        d = self.config.d_model
        x = self.ln_f(x)
        nodes, m = x[:, 1:], batch.mask[..., None].to(x.dtype)
        mean = (nodes * m).sum(1) / m.sum(1).clamp(min=1.0)
        g, n = self.graph_head[0], self.node_head[0]
        graph = x[:, 0] @ g.weight[:, :d].T + mean @ g.weight[:, d:2 * d].T + g.bias
        node = self._cost_states(nodes, batch) @ n.weight[:, :d].T + n.bias
        if self.roofline is not None:
            work = self._log_work(batch)
            high = work.half().to(work.dtype)
            node = torch.cat([node, high, work - high], -1)
        return graph, node

    def late_fusion_readout(self, graph: torch.Tensor, node: torch.Tensor, mask: torch.Tensor,
                            hw: HardwareBatch) -> torch.Tensor:
        """``decode`` from ``late_fusion_parts`` and the cards (one row, or one per graph)."""
        d = self.config.d_model
        t = self.ln_f(self.hardware_token(hw))
        g = graph + t @ self.graph_head[0].weight[:, 2 * d:].T
        out = self.graph_head[2](self.graph_head[1](g)).squeeze(-1)
        work = None
        if self.roofline is not None:
            node, work = node[..., :-4], node[..., -4:-2] + node[..., -2:]
        h = node + (t @ self.node_head[0].weight[:, d:].T)[:, None]
        score = self.node_head[2](self.node_head[1](h)).squeeze(-1)
        if work is not None:
            score = score + self._roofline_term(work, t, hw)
        return self._combine(out, score.masked_fill(~mask, float("-inf")))

    def forward(self, batch: Batch, hw: HardwareBatch | None = None,
                graph_index: torch.Tensor | None = None) -> torch.Tensor:
        """One value per row in model space (log-ms for latency, accuracy for accuracy).

        Row r is graph ``graph_index[r]`` of ``batch`` (default: row r = graph r) on hardware row
        r: a graph measured on several devices is encoded once.
        """
        x = self.encode(batch)
        if graph_index is not None:
            x, batch = x[graph_index], batch.index(graph_index)
        return self.decode(x, batch, hw)


__all__ = ["Block", "LeDGFormer", "LeDGFormerConfig", "RelationBias"]
