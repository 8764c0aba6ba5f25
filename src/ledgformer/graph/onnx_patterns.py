"""Fold decomposed operator patterns of exported graphs back into single IR nodes.

Exporters write LayerNorm (opset < 17), GELU (opset < 20), hard-swish / hard-sigmoid written as
``x * relu6(x + 3) / 6``, swish (``x * sigmoid(x)``) and Linear layers on 3-D inputs
(``MatMul`` + bias ``Add``) as chains of small ops; PyTorch writes GroupNorm as
``Reshape -> InstanceNormalization(ones, zeros) -> Reshape -> Mul -> Add``. The IR shows the
operator as authored, so each chain becomes one node whose weights are the union of the chain's
weights. A pattern only fires when its inner tensors have no other consumer, so no computation
is ever lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

from ledgformer.graph.onnx_ops import PNode, ir_op_and_attrs


class _Index:
    """Producer/consumer look-ups over the live intermediate nodes."""

    def __init__(self, nodes: list[PNode], graph_outputs: Iterable[str]) -> None:
        self.producer = {t: p for p in nodes for t in p.outputs}
        self.consumers: dict[str, list[PNode]] = defaultdict(list)
        for p in nodes:
            for t in p.act:
                self.consumers[t].append(p)
        self.outputs = set(graph_outputs)

    def prod(self, tensor: str) -> PNode | None:
        p = self.producer.get(tensor)
        return p if p is not None and p.alive else None

    def live_consumers(self, tensor: str) -> list[PNode]:
        return [c for c in self.consumers[tensor] if c.alive]

    def sole(self, p: PNode | None) -> PNode | None:
        """The only consumer of ``p``'s single output (None if shared or a graph output)."""
        if p is None or len(p.outputs) != 1 or p.outputs[0] in self.outputs:
            return None
        cs = self.live_consumers(p.outputs[0])
        return cs[0] if len(cs) == 1 else None

    def fuse(self, group: list[PNode], op: str, act_from: PNode, attrs: dict | None = None) -> None:
        """Replace ``group`` (its last node gives the output) by one node of IR op ``op``."""
        last = group[-1]
        last.weights = [w for p in group for w in p.weights]
        last.buffers = [b for p in group for b in p.buffers]
        last.raw_op = "+".join(p.raw_op or p.op_type for p in group)
        last.act, last.act_shapes = list(act_from.act), list(act_from.act_shapes)
        last.act_pos = list(range(len(last.act)))
        last.fused, last.attrs = op, dict(attrs or {})
        for p in group[:-1]:
            p.alive = False
        for t in last.act:
            self.consumers[t].append(last)


def _is(p: PNode | None, op_type: str, fused: str = "") -> bool:
    return p is not None and p.alive and (
        (not p.fused and p.op_type == op_type) or (bool(fused) and p.fused == fused))


def _scalar(p: PNode | None) -> float | None:
    """The scalar constant operand of a one-activation binary op (None if it has none)."""
    if p is None or len(p.act) != 1 or p.weights:
        return None
    for pos, value in p.consts.items():
        if pos not in p.act_pos and value is not None and np.size(value) == 1:
            return float(np.asarray(value).ravel()[0])
    return None


def _near(value: float | None, target: float, tol: float = 1e-4) -> bool:
    return value is not None and abs(value - target) <= tol * max(1.0, abs(target))


def _linear_bias(ix: _Index, mm: PNode) -> None:
    """MatMul(x, W) + b -> gemm with bias (a Linear layer applied to a 3-D input)."""
    if not (_is(mm, "MatMul") and len(mm.act) == 1 and mm.weights):
        return
    add = ix.sole(mm)
    n = mm.out_shapes[0][-1] if mm.out_shapes[0] else None
    if _is(add, "Add") and add is not None and len(add.act) == 1 and len(add.weights) == 1 \
            and add.weights[0][1] == (n,):
        attrs = ir_op_and_attrs(mm, 13)[1] | {"bias": True}
        ix.fuse([mm, add], "gemm", mm, attrs)


def _gelu(ix: _Index, erf: PNode) -> None:
    """x * 0.5 * (1 + erf(x / sqrt 2)), in either multiplication order -> gelu."""
    if not _is(erf, "Erf"):
        return
    d = ix.prod(erf.act[0]) if erf.act else None
    scale = _scalar(d)
    if not ((_is(d, "Div") and _near(scale, 2**0.5)) or (_is(d, "Mul") and _near(scale, 0.5**0.5))):
        return
    assert d is not None
    x = d.act[0]
    add = ix.sole(erf)
    if ix.sole(d) is not erf or not (_is(add, "Add") and _near(_scalar(add), 1.0)):
        return
    m1 = ix.sole(add)
    if not (_is(m1, "Mul") and m1 is not None and len(m1.act) == 2):
        return
    other = m1.act[1] if m1.act[0] == add.outputs[0] else m1.act[0]
    half = ix.prod(other)
    if other == x:
        m2 = ix.sole(m1)
        if _is(m2, "Mul") and _near(_scalar(m2), 0.5):
            ix.fuse([d, erf, add, m1, m2], "gelu", d)  # type: ignore[list-item]
    elif _is(half, "Mul") and half is not None and half.act == [x] and _near(_scalar(half), 0.5) \
            and ix.sole(half) is m1:
        ix.fuse([d, erf, add, half, m1], "gelu", d)


def _layernorm(ix: _Index, r1: PNode) -> None:
    """(x - mean) / sqrt(var + eps) [* gamma + beta] over the last axis -> layernorm."""
    if not (_is(r1, "ReduceMean") and len(r1.act) == 1):
        return
    x = r1.act[0]
    sub = ix.sole(r1)
    if not (_is(sub, "Sub") and sub is not None and sub.act == [x, r1.outputs[0]]):
        return
    users = ix.live_consumers(sub.outputs[0])
    pw = next((u for u in users if _is(u, "Pow") and _near(_scalar(u), 2.0)), None)
    div = next((u for u in users if _is(u, "Div") and len(u.act) == 2), None)
    r2 = ix.sole(pw)
    eps = ix.sole(r2) if _is(r2, "ReduceMean") else None
    sqrt = ix.sole(eps) if _is(eps, "Add") and _scalar(eps) is not None else None
    if len(users) != 2 or pw is None or div is None or not _is(sqrt, "Sqrt") or ix.sole(sqrt) is not div:
        return
    assert r2 is not None and eps is not None and sqrt is not None
    group = [r1, sub, pw, r2, eps, sqrt, div]
    mul = ix.sole(div)
    if _is(mul, "Mul") and mul is not None and len(mul.act) == 1 and mul.weights:
        group.append(mul)
        add = ix.sole(mul)
        if _is(add, "Add") and add is not None and len(add.act) == 1 and add.weights:
            group.append(add)
    shape = r1.act_shapes[0]
    ix.fuse(group, "layernorm", r1, {"axis": len(shape) - 1, "normalized_shape": shape[-1:],
                                     "epsilon": round(float(_scalar(eps) or 0.0), 12)})


def _hard_sigmoid_chain(ix: _Index, clip: PNode) -> None:
    """relu6(x + 3) / 6 -> hardsigmoid; x * relu6(x + 3) / 6 -> hardswish."""
    if not (_is(clip, "Clip") and ir_op_and_attrs(clip, 13)[0] == "relu6"):
        return
    add = ix.prod(clip.act[0])
    if not (_is(add, "Add") and _near(_scalar(add), 3.0) and ix.sole(add) is clip):
        return
    assert add is not None
    x = add.act[0]
    nxt = ix.sole(clip)
    if _is(nxt, "Mul") and nxt is not None and sorted(nxt.act) == sorted([x, clip.outputs[0]]):
        div = ix.sole(nxt)
        if _is(div, "Div") and _near(_scalar(div), 6.0):
            ix.fuse([add, clip, nxt, div], "hardswish", add)  # type: ignore[list-item]
    elif (_is(nxt, "Div") and _near(_scalar(nxt), 6.0)) or (_is(nxt, "Mul") and _near(_scalar(nxt), 1 / 6)):
        ix.fuse([add, clip, nxt], "hardsigmoid", add)  # type: ignore[list-item]


def _gated(ix: _Index, mul: PNode) -> None:
    """x * sigmoid(x) -> swish; x * hardsigmoid(x) -> hardswish."""
    if not (_is(mul, "Mul") and len(mul.act) == 2):
        return
    for x, gate in (mul.act, mul.act[::-1]):
        g = ix.prod(gate)
        if g is None or g.act != [x] or ix.sole(g) is not mul:
            continue
        if _is(g, "Sigmoid", "sigmoid"):
            ix.fuse([g, mul], "swish", g)
            return
        if _is(g, "HardSigmoid", "hardsigmoid"):
            ix.fuse([g, mul], "hardswish", g)
            return


def _groupnorm(ix: _Index, inorm: PNode, weight_value: Callable[[str], np.ndarray | None]) -> None:
    """Reshape -> InstanceNorm(identity affine over groups) -> Reshape [* gamma + beta] -> groupnorm.

    The instance norm's all-ones scale and all-zeros bias are exporter constants, not
    parameters; the per-channel gamma and beta are.
    """
    if not (_is(inorm, "InstanceNormalization") and len(inorm.weights) == 2 and len(inorm.act) == 1):
        return
    r1, r2 = ix.prod(inorm.act[0]), ix.sole(inorm)
    scale, bias = (weight_value(src) for src, _ in inorm.weights)
    if not (_is(r1, "Reshape") and ix.sole(r1) is inorm and _is(r2, "Reshape")) or scale is None \
            or bias is None or not (np.all(scale == 1) and np.all(bias == 0)):
        return
    assert r1 is not None and r2 is not None
    group = [r1, inorm, r2]
    mul = ix.sole(r2)
    if _is(mul, "Mul") and mul is not None and len(mul.act) == 1 and mul.weights:
        group.append(mul)
        add = ix.sole(mul)
        if _is(add, "Add") and add is not None and len(add.act) == 1 and add.weights:
            group.append(add)
    num_groups = int(inorm.weights[0][1][0])
    inorm.weights = []
    ix.fuse(group, "groupnorm", r1, {"num_groups": num_groups,
                                     "epsilon": float(inorm.attrs.get("epsilon", 1e-5))})


def fuse_patterns(
    nodes: list[PNode], graph_outputs: Iterable[str], weight_value: Callable[[str], np.ndarray | None],
) -> None:
    """Apply every pattern in place (fused-away nodes get ``alive = False``).

    ``weight_value(source)`` returns a small weight's values (None when unavailable).
    """
    ix = _Index(nodes, graph_outputs)
    for p in nodes:
        if p.alive:
            _groupnorm(ix, p, weight_value)
    for rule in (_linear_bias, _layernorm, _gelu, _hard_sigmoid_chain, _gated):
        for p in nodes:
            if p.alive:
                rule(ix, p)
