"""ONNX operators -> IR vocabulary: op names, weight roles of inputs, and cost attributes.

``PNode`` is the importer's intermediate node: one ONNX node (or a fused pattern) after constant
folding, with its activation inputs separated from its constant inputs. ``ir_op_and_attrs`` turns
it into the normalised op and the attributes ``ledgformer.graph.cost`` needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ledgformer.graph.onnx_fold import einsum_dims

Shape = tuple[int, ...]

#: ONNX op type -> IR op for ops whose cost needs no attribute beyond shapes
SIMPLE_OPS: dict[str, str] = {
    "Relu": "relu", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
    "Tanh": "tanh", "Gelu": "gelu", "Erf": "erf", "Elu": "elu", "Selu": "elu", "Celu": "elu",
    "LeakyRelu": "leaky_relu", "PRelu": "leaky_relu", "ThresholdedRelu": "leaky_relu",
    "Softplus": "softplus", "Softsign": "softplus", "Mish": "elementwise",
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Sqrt": "sqrt", "Exp": "exp",
    "Sum": "add", "Mean": "elementwise", "Min": "elementwise", "Max": "elementwise",
    "Neg": "elementwise", "Abs": "elementwise", "Reciprocal": "elementwise", "Log": "elementwise",
    "Floor": "elementwise", "Ceil": "elementwise", "Round": "elementwise", "Sign": "elementwise",
    "Sin": "elementwise", "Cos": "elementwise", "Where": "elementwise", "Equal": "elementwise",
    "Less": "elementwise", "Greater": "elementwise", "LessOrEqual": "elementwise",
    "GreaterOrEqual": "elementwise", "Not": "elementwise", "And": "elementwise", "Or": "elementwise",
    "Xor": "elementwise", "Mod": "elementwise", "IsNaN": "elementwise", "IsInf": "elementwise",
    "Shrink": "elementwise", "BitShift": "elementwise",
    "GlobalAveragePool": "global_avgpool", "GlobalMaxPool": "global_maxpool",
    "ReduceMean": "reduce_mean", "ReduceSum": "reduce", "ReduceMax": "reduce", "ReduceMin": "reduce",
    "ReduceProd": "reduce", "ReduceL1": "reduce", "ReduceL2": "reduce", "ReduceLogSum": "reduce",
    "ReduceLogSumExp": "reduce", "ReduceSumSquare": "reduce", "ArgMax": "reduce", "ArgMin": "reduce",
    "Reshape": "reshape", "Squeeze": "squeeze", "Unsqueeze": "squeeze", "Expand": "expand",
    "Tile": "expand", "Cast": "cast", "CastLike": "cast", "Gather": "gather",
    "GatherElements": "gather", "GatherND": "gather", "DepthToSpace": "transpose",
    "SpaceToDepth": "transpose", "Shape": "reshape", "Size": "reshape",
    "ConstantOfShape": "expand", "Range": "expand",
}

#: ops rewired away: their output is their first input
REMOVED_OPS = frozenset({"Identity", "Dropout"})

#: ops that only re-lay-out a weight: the result is still that weight (counted once, at its user)
WEIGHT_PREP_OPS = frozenset({"Identity", "Transpose", "Reshape", "Cast", "Squeeze", "Unsqueeze", "Flatten"})

#: input positions that hold trainable tensors whatever their size
_WEIGHT_INPUTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}), "ConvTranspose": frozenset({1, 2}), "Gemm": frozenset({0, 1, 2}),
    "BatchNormalization": frozenset({1, 2}), "LayerNormalization": frozenset({1, 2}),
    "InstanceNormalization": frozenset({1, 2}), "GroupNormalization": frozenset({1, 2}),
    "PRelu": frozenset({1}), "MatMul": frozenset({0, 1}), "Gather": frozenset({0}),
}
#: input positions that are never trainable (shapes, indices, bounds, scales, statistics)
_NON_WEIGHT_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}),
    "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}), "Slice": frozenset({1, 2, 3, 4}),
    "Pad": frozenset({1, 2, 3}), "Clip": frozenset({1, 2}), "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}), "Split": frozenset({1}), "Gather": frozenset({1}),
    "GatherElements": frozenset({1}), "GatherND": frozenset({1}), "TopK": frozenset({1}),
    "Where": frozenset({0}), "Pow": frozenset({1}), "Dropout": frozenset({1, 2}),
    "ConstantOfShape": frozenset({0}), "Range": frozenset({0, 1, 2}), "OneHot": frozenset({0, 1, 2}),
    "BatchNormalization": frozenset({3, 4}), "ScatterND": frozenset({1}), "ScatterElements": frozenset({1}),
}
_FLOAT_KINDS = frozenset("f")


def input_role(op_type: str, pos: int, dtype: np.dtype, numel: int) -> str:
    """'weight' (trainable parameter), 'buffer' (BN running stats) or 'const' for a constant input.

    Integer tensors are never parameters; float tensors count where the op defines them as
    weights, or, in element-wise ops (ViT pos_embed, cls_token, layer-scale gamma), when they
    hold more than one element (scalars such as GELU's 0.5 or an epsilon are constants).
    """
    if np.dtype(dtype).kind not in _FLOAT_KINDS:
        return "const"
    if op_type == "BatchNormalization" and pos in (3, 4):
        return "buffer"
    if pos in _WEIGHT_INPUTS.get(op_type, ()):
        return "weight"
    if pos in _NON_WEIGHT_INPUTS.get(op_type, ()) or op_type.startswith("Reduce"):
        return "const"
    return "weight" if numel > 1 else "const"


@dataclass
class PNode:
    """One ONNX node (or fused pattern) after folding: what the IR node is built from."""

    op_type: str
    name: str
    attrs: dict[str, Any]
    act: list[str]  # activation input tensors (they become edges)
    act_pos: list[int]  # their input positions
    act_shapes: list[Shape]
    outputs: list[str]
    out_shapes: list[Shape]
    #: shapes of input positions, activation or constant (None for a missing optional input)
    in_shapes: list[Shape | None] = field(default_factory=list)
    consts: dict[int, Any] = field(default_factory=dict)  # position -> folded value (small only)
    weights: list[tuple[str, Shape]] = field(default_factory=list)  # (source id, shape)
    buffers: list[Shape] = field(default_factory=list)
    fused: str = ""  # IR op of a fused pattern ("gelu", "layernorm" ...)
    raw_op: str = ""  # the ONNX op(s) a fused node came from
    alive: bool = True


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        elif isinstance(v, list):
            v = tuple(x.decode() if isinstance(x, bytes) else x for x in v)
        out[a.name] = v
    return out


def sorted_nodes(graph: onnx.GraphProto, known: set[str]) -> list[onnx.NodeProto]:
    """Graph nodes in topological order (ONNX requires it; a few writers break the rule)."""
    nodes, seen, order, pending = list(graph.node), set(known), [], []
    for n in nodes:
        (order if all(i in seen or not i for i in n.input) else pending).append(n)
        if order and order[-1] is n:
            seen.update(n.output)
    while pending:
        ready = [n for n in pending if all(i in seen or not i for i in n.input)]
        if not ready:
            order.extend(pending)  # a dangling input: the node becomes a source, as written
            break
        for n in ready:
            seen.update(n.output)
            order.append(n)
        pending = [n for n in pending if n not in ready]
    return order


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _explicit_pads(attrs: dict[str, Any], in_hw: Shape, kernel: Shape, stride: Shape,
                   dilation: Shape) -> tuple[int, ...]:
    """ONNX pads (begins..., ends...), resolving auto_pad SAME_UPPER/SAME_LOWER/VALID."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(nd):
            out = -(-in_hw[i] // stride[i])
            total = max((out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i], 0)
            small, big = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        return (*begins, *ends)
    if auto == "VALID":
        return (0,) * (2 * nd)
    return _ints(attrs.get("pads", (0,) * (2 * nd)))


def _window_attrs(p: PNode, kernel: Shape) -> dict[str, Any]:
    nd = len(kernel)
    stride = _ints(p.attrs.get("strides", (1,) * nd))
    dilation = _ints(p.attrs.get("dilations", (1,) * nd))
    pads = _explicit_pads(p.attrs, p.act_shapes[0][2:], kernel, stride, dilation)
    return {"kernel": kernel, "stride": stride, "pads": pads, "dilation": dilation}


def _clip_bounds(p: PNode) -> tuple[float, float]:
    lo = p.attrs.get("min", p.consts.get(1))
    hi = p.attrs.get("max", p.consts.get(2))
    lo = -math.inf if lo is None else float(np.asarray(lo).ravel()[0])
    hi = math.inf if hi is None else float(np.asarray(hi).ravel()[0])
    return lo, hi


def ir_op_and_attrs(p: PNode, opset: int) -> tuple[str, dict[str, Any]]:
    """Normalised op and cost attributes of ``p`` (``unknown`` for ops outside the vocabulary)."""
    op, a = p.op_type, p.attrs
    x = p.act_shapes[0] if p.act_shapes else ()
    if p.fused:
        return p.fused, dict(a)
    if op in ("Conv", "ConvTranspose"):
        w = p.in_shapes[1]
        assert w is not None
        kernel = _ints(a.get("kernel_shape", w[2:]))
        groups = int(a.get("group", 1))
        attrs = _window_attrs(p, kernel) | {"groups": groups, "bias": len(p.in_shapes) > 2
                                            and p.in_shapes[2] is not None}
        if op == "Conv":
            return "conv", attrs | {"in_channels": int(x[1]), "out_channels": int(w[0])}
        return "conv_transpose", attrs | {
            "in_channels": int(x[1]), "out_channels": int(w[1]) * groups,
            "output_padding": _ints(a.get("output_padding", (0,) * len(kernel)))}
    if op == "Gemm":
        a_shape, b_shape = p.in_shapes[0], p.in_shapes[1]
        assert a_shape is not None and b_shape is not None
        k = a_shape[0] if a.get("transA") else a_shape[1]
        n = b_shape[0] if a.get("transB") else b_shape[1]
        return "gemm", {"in_features": int(k), "out_features": int(n),
                        "bias": len(p.in_shapes) > 2 and p.in_shapes[2] is not None}
    if op == "MatMul":
        if len(p.act) == 2:
            return "matmul", {}
        # x @ W (a Linear layer) or W @ x: the weight's contraction dim is in_features
        w = p.in_shapes[0] if p.act_pos == [1] else p.in_shapes[1]
        assert w is not None
        if len(w) == 1:
            k, n = w[0], 1
        else:
            k, n = (w[-1], w[-2]) if p.act_pos == [1] else (w[-2], w[-1])
        return "gemm", {"in_features": int(k), "out_features": int(n), "bias": bool(a.get("bias"))}
    if op == "Einsum" and len(p.in_shapes) == 2 and all(p.in_shapes):
        # a product of two tensors (CvT's attention: bhlk,bhtk->bhlt); its MACs per output
        # element are the sizes of the summed-over indices, not always the last input dim
        _, reduce = einsum_dims(str(a["equation"]), p.in_shapes)  # type: ignore[arg-type]
        return "matmul", {"equation": str(a["equation"]), "reduce": int(reduce)}
    if op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = _ints(a["kernel_shape"])
        return ("maxpool" if op == "MaxPool" else "avgpool"), _window_attrs(p, kernel) | {
            "ceil_mode": int(a.get("ceil_mode", 0))}
    if op == "BatchNormalization":
        return "batchnorm", {"channels": int(x[1]), "epsilon": float(a.get("epsilon", 1e-5))}
    if op == "LayerNormalization":
        axis = int(a.get("axis", -1)) % len(x)
        return "layernorm", {"axis": axis, "normalized_shape": tuple(x[axis:]),
                             "epsilon": float(a.get("epsilon", 1e-5))}
    if op in ("InstanceNormalization", "GroupNormalization"):
        return "groupnorm", {"num_groups": int(a.get("num_groups", x[1])),
                             "epsilon": float(a.get("epsilon", 1e-5))}
    if op == "LRN":
        return "lrn", {"size": int(a["size"])}
    if op == "Clip":
        lo, hi = _clip_bounds(p)
        if lo == 0 and hi == 6:
            return "relu6", {}
        if lo == 0 and hi == math.inf:
            return "relu", {}
        return "clip", {"min": lo, "max": hi}
    if op in ("Softmax", "LogSoftmax"):
        return "softmax", {"axis": int(a.get("axis", -1 if opset >= 13 else 1))}
    if op in ("Resize", "Upsample"):
        out = p.out_shapes[0]
        return "resize", {"mode": str(a.get("mode", "nearest")),
                          "scale": tuple(round(o / i, 6) for o, i in zip(out, x, strict=False))}
    if op == "Concat":
        return "concat", {"axis": int(a["axis"]) % len(p.out_shapes[0])}
    if op == "Split":
        axis = int(a.get("axis", 0)) % len(x)
        return "split", {"axis": axis, "sizes": tuple(int(s[axis]) for s in p.out_shapes)}
    if op == "Slice":
        return "slice", {}
    if op == "Transpose":
        return "transpose", {"perm": _ints(a.get("perm", reversed(range(len(x)))))}
    if op == "Flatten":
        return "flatten", {"axis": int(a.get("axis", 1))}
    if op == "Pad":
        return "pad", {"mode": str(a.get("mode", "constant"))}
    if op.startswith("Reduce") or op in ("ArgMax", "ArgMin"):
        return SIMPLE_OPS[op], {"keepdims": int(a.get("keepdims", 1))}
    if op in ("Gather", "GatherElements"):
        return "gather", {"axis": int(a.get("axis", 0))}
    if op in ("Cast", "CastLike"):
        return "cast", {"to": int(a.get("to", 0))}
    if op in ("LeakyRelu", "Elu"):
        return SIMPLE_OPS[op], {"alpha": float(a.get("alpha", 0.01 if op == "LeakyRelu" else 1.0))}
    return SIMPLE_OPS.get(op, "unknown"), {}
