"""Gathers of the relation-bias table ``table[rel]``, fast on a CPU: the training path's
backward, its fused dynamic bias, and the inference path's one-pass gather for every block; and
the biased attention itself. Same values as plain indexing and as torch's fused attention
(tested); kept apart from the model so ``ledgformer.py`` reads as the model alone."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ledgformer.model.ledgformer import RelationBias


class _RelationLookup(torch.autograd.Function):
    """``table[rel]`` as [B, C, S, S] with an ``index_add_`` backward (``nn.Embedding``'s dense
    backward sorts B*S*S indices and dominates a CPU training step on whole networks)."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rel)
        ctx.n_rel = table.shape[0]
        return table[rel].permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rel,) = ctx.saved_tensors
        c = grad.shape[1]
        flat = grad.permute(0, 2, 3, 1).reshape(-1, c)
        out = torch.zeros(ctx.n_rel, c, dtype=grad.dtype, device=grad.device)
        return out.index_add_(0, rel.reshape(-1), flat), None


def gather_relations(table: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """``table[rel]`` [B, S, S, C] as [B, C, S, S] (``rel`` [B, S, S] relation ids)."""
    return _RelationLookup.apply(table, rel)


def _planes(table: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """``table[rel]`` as contiguous planes [C, B, S, S]: one ``take`` per column."""
    cols = table.T.contiguous()
    out = torch.empty((len(cols), *rel.shape), dtype=cols.dtype, device=cols.device)
    for c in range(len(cols)):
        torch.take(cols[c], rel, out=out[c])
    return out


class _DynamicBias(torch.autograd.Function):
    """``static + gate * score`` with ``[static | gate] = table[rel]``, fused: slicing the gathered
    [B, 2H, S, S] tensor in autograd costs two zero-filled full-size gradients and a permuted copy
    per block in the backward, most of a CPU fine-tuning step on whole networks."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, rel: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        h = score.shape[1]
        planes = _planes(table, rel)
        gate = planes[h:].transpose(0, 1)
        ctx.save_for_backward(rel, score, gate)
        ctx.n_rel = table.shape[0]
        return planes[:h].transpose(0, 1) + gate * score

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor]:
        rel, score, gate = ctx.saved_tensors
        h, flat = score.shape[1], rel.reshape(-1)
        cols = torch.zeros(2 * h, ctx.n_rel, dtype=grad.dtype, device=grad.device)
        for c in range(h):
            cols[c].index_add_(0, flat, grad[:, c].reshape(-1))
            cols[h + c].index_add_(0, flat, (grad[:, c] * score[:, c]).reshape(-1))
        return cols.T, None, grad * gate


def dynamic_bias(table: torch.Tensor, rel: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """``table[rel][..., :H] + table[rel][..., H:] * score`` [B, H, S, S] (``table`` [R, 2H],
    ``score`` [B, H, S, S]): the training path of a dynamic relation bias."""
    return _DynamicBias.apply(table, rel, score)


def lookup(biases: list[RelationBias], rel: torch.Tensor, key_pad: torch.Tensor) -> list[torch.Tensor]:
    """Each block's ``table[rel].permute(0, 3, 1, 2)`` with ``key_pad`` added to the static columns
    (same values), for inference: one ``take`` per column into planes [C, B, S, S] is several times
    faster than indexing rows, and the bias arithmetic on contiguous planes ~2x faster than on the
    permuted view. Padded keys read an extra relation row (static -inf, gate 0), so the blocks need
    not add ``key_pad``: -inf + 0 * score = -inf and x + 0 = x, as adding it gives."""
    rows = []
    for b in biases:  # the table plus the padding row; static columns first
        pad = torch.zeros(1, b.table.shape[1], dtype=b.table.dtype, device=b.table.device)
        pad[0, : b.h] = float("-inf")
        rows.append(torch.cat([b.table, pad]))
    table = torch.cat(rows, dim=1)  # [R + 1, sum C]
    out = _planes(table, rel.masked_fill(torch.isinf(key_pad[:, 0]), table.shape[0] - 1))
    return list(out.permute(1, 0, 2, 3).split([r.shape[1] for r in rows], dim=1))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
              dropout_p: float = 0.0) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)``, bit for bit.

    When the bias needs a gradient (training the relation bias), torch's CPU attention runs its
    math path; that path is written out here as it computes it, without its guard for rows whose
    keys are all masked (an ``isneginf``, ``all`` and ``where`` over every score; here every row
    has a key, a graph has a node), which made a whole-network training step ~9 % slower.
    Otherwise torch's fused kernel (other rounding) runs, as before."""
    if not (bias.requires_grad and torch.is_grad_enabled()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    scale = math.sqrt(1.0 / math.sqrt(q.shape[-1]))
    weights = torch.softmax((q * scale) @ (k.transpose(-2, -1) * scale) + bias, -1)
    return (F.dropout(weights, dropout_p) if dropout_p else weights) @ v


__all__ = ["attention", "dynamic_bias", "gather_relations", "lookup"]
