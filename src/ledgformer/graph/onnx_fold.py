"""Constant folding and our own shape inference for the ONNX importer.

Exporters compute reshape targets at run time (``Shape -> Gather -> Unsqueeze -> Concat ->
Reshape``). Once the input shape is fixed those sub-graphs are constants: ``fold`` evaluates them
with numpy (falling back to ``onnx.reference`` for rarer ops) so the IR shows only compute ops.
``infer_shapes`` covers the ops whose output shape ONNX shape inference leaves unknown when a
shape depends on such folded values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import helper, numpy_helper

Shape = tuple[int, ...]
Vals = list[Any]  # numpy arrays, or None for a missing optional input
Attrs = dict[str, Any]

#: results bigger than this (elements) are not folded (they are activations in disguise)
MAX_FOLD_ELEMENTS = 1 << 20
#: shape-only evaluation (int8 zeros, inputs zero-stride) goes up to this size: a Swin-384 stage
#: (96 x 96 x 128) or BEiT-384's relative position bias (12 x 577 x 577) is above the fold limit
MAX_SHAPE_ELEMENTS = 1 << 28


def _axes(attrs: Attrs, vals: Vals, pos: int = 1) -> list[int] | None:
    """Axes given as attribute (old opsets) or as input ``pos`` (newer opsets)."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(vals) > pos and vals[pos] is not None:
        return [int(a) for a in np.asarray(vals[pos]).ravel()]
    return None


def _slice(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    x = vals[0]
    if "starts" in attrs:  # opset < 10
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    else:
        starts, ends = vals[1].ravel(), vals[2].ravel()
        axes = vals[3].ravel() if len(vals) > 3 and vals[3] is not None else range(len(starts))
        steps = vals[4].ravel() if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=False):
        index[int(a)] = slice(int(s), int(e), int(st))
    return [x[tuple(index)]]


def _reshape_target(in_shape: Sequence[int], target: Sequence[int], allowzero: int = 0) -> Shape:
    """ONNX Reshape semantics: 0 copies the input dim (unless allowzero), -1 is inferred."""
    out = [int(in_shape[i]) if (int(t) == 0 and not allowzero) else int(t) for i, t in enumerate(target)]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known if known else 0
    return tuple(out)


def _gather(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    return [np.take(vals[0], vals[1].astype(np.int64), axis=int(attrs.get("axis", 0)))]


def _unsqueeze(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    x = vals[0]
    axes = _axes(attrs, vals) or []
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def _squeeze(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    axes = _axes(attrs, vals)
    return [np.squeeze(vals[0], axis=None if axes is None else tuple(axes))]


def _cast(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    return [vals[0].astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))]


def _constant_of_shape(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
    value = attrs.get("value")
    fill = value if value is not None else np.zeros(1, np.float32)
    return [np.full(tuple(int(d) for d in vals[0].ravel()), fill.ravel()[0], dtype=fill.dtype)]


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[[Attrs, Vals], list[np.ndarray]]:
    def run(attrs: Attrs, vals: Vals) -> list[np.ndarray]:
        out = fn(vals[0], vals[1])
        return [np.asarray(out).astype(np.result_type(vals[0], vals[1]), copy=False)]

    return run


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(a / b).astype(np.result_type(a, b))
    return a / b


def _unary(fn: Callable[[Any], Any]) -> Callable[[Attrs, Vals], list[np.ndarray]]:
    return lambda attrs, vals: [np.asarray(fn(vals[0])).astype(vals[0].dtype, copy=False)]


FOLDERS: dict[str, Callable[[Attrs, Vals], list[np.ndarray]]] = {
    "Identity": lambda a, v: [v[0]],
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda a, v: [np.concatenate([x for x in v if x is not None], axis=int(a["axis"]))],
    "Cast": _cast,
    "Slice": _slice,
    "Reshape": lambda a, v: [v[0].reshape(_reshape_target(v[0].shape, v[1].ravel(), a.get("allowzero", 0)))],
    "Flatten": lambda a, v: [v[0].reshape(math.prod(v[0].shape[: a.get("axis", 1)]), -1)],
    "Transpose": lambda a, v: [np.transpose(v[0], a.get("perm"))],
    "Expand": lambda a, v: [v[0] * np.ones(tuple(int(d) for d in v[1].ravel()), v[0].dtype)],
    "Tile": lambda a, v: [np.tile(v[0], tuple(int(d) for d in v[1].ravel()))],
    "ConstantOfShape": _constant_of_shape,
    "Range": lambda a, v: [np.arange(v[0].item(), v[1].item(), v[2].item()).astype(v[0].dtype)],
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(_div),
    "Mod": _binary(np.fmod),
    "Pow": lambda a, v: [np.power(v[0], v[1]).astype(v[0].dtype)],
    "Min": lambda a, v: [np.minimum.reduce(v)],
    "Max": lambda a, v: [np.maximum.reduce(v)],
    "Equal": lambda a, v: [np.equal(v[0], v[1])],
    "Less": lambda a, v: [np.less(v[0], v[1])],
    "Greater": lambda a, v: [np.greater(v[0], v[1])],
    "Not": lambda a, v: [np.logical_not(v[0])],
    "And": lambda a, v: [np.logical_and(v[0], v[1])],
    "Or": lambda a, v: [np.logical_or(v[0], v[1])],
    "Where": lambda a, v: [np.where(v[0], v[1], v[2])],
    "Sqrt": _unary(np.sqrt),
    "Neg": _unary(np.negative),
    "Abs": _unary(np.abs),
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Reciprocal": _unary(np.reciprocal),
    "ReduceProd": lambda a, v: [np.prod(v[0], axis=None if _axes(a, v) is None else tuple(_axes(a, v)),
                                        keepdims=bool(a.get("keepdims", 1)))],
}


def fold(node: Any, attrs: Attrs, vals: Vals, opset: int) -> list[np.ndarray] | None:
    """Outputs of ``node`` evaluated on constant inputs, or None when it cannot be folded."""
    fn = FOLDERS.get(node.op_type)
    try:
        outs = fn(attrs, vals) if fn else _reference(node, vals, opset)
    except Exception:  # an op our folder or onnx.reference cannot evaluate: keep it as a node
        return None
    if outs is None or any(np.asarray(o).size > MAX_FOLD_ELEMENTS for o in outs):
        return None
    return [np.asarray(o) for o in outs]


def _reference(node: Any, vals: Vals, opset: int) -> list[np.ndarray] | None:
    """Evaluate one node with ``onnx.reference`` (slow; only for ops ``FOLDERS`` lacks)."""
    if node.domain not in ("", "ai.onnx") or any(np.asarray(v).size > MAX_FOLD_ELEMENTS
                                                  for v in vals if v is not None):
        return None
    from onnx.reference import ReferenceEvaluator

    names = [n for n in node.input]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), None)
              for n, v in zip(names, vals, strict=False) if n and v is not None]
    outputs = [helper.make_tensor_value_info(n, 0, None) for n in node.output if n]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: np.asarray(v) for n, v in zip(names, vals, strict=False) if n and v is not None}
    return list(ReferenceEvaluator(model).run(None, feeds))


def constant_value(node: Any) -> np.ndarray:
    """The tensor a ``Constant`` node holds, whichever attribute it uses."""
    attr = node.attribute[0]
    value = helper.get_attribute_value(attr)
    if attr.name == "value":
        return numpy_helper.to_array(value)
    if attr.name in ("value_float", "value_floats"):
        return np.asarray(value, dtype=np.float32)
    if attr.name in ("value_int", "value_ints"):
        return np.asarray(value, dtype=np.int64)
    raise ValueError(f"Constant attribute '{attr.name}' is not supported")


# ---- our own shape inference (where ONNX's leaves a shape unknown) -------------------------------
def _broadcast(shapes: Sequence[Shape]) -> Shape:
    return tuple(int(d) for d in np.broadcast_shapes(*shapes))


def _window_out(attrs: Attrs, x: Shape, kernel: Sequence[int], dilation: Sequence[int]) -> Shape:
    nd = len(kernel)
    stride = attrs.get("strides", [1] * nd)
    size = x[2:]
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return tuple(-(-size[i] // stride[i]) for i in range(nd))
    pads = [0] * (2 * nd) if auto == "VALID" else attrs.get("pads", [0] * (2 * nd))
    rnd = math.ceil if attrs.get("ceil_mode", 0) else math.floor
    return tuple(
        int(rnd((size[i] + pads[i] + pads[i + nd] - dilation[i] * (kernel[i] - 1) - 1) / stride[i])) + 1
        for i in range(nd)
    )


def einsum_dims(equation: str, shapes: Sequence[Shape]) -> tuple[Shape, int]:
    """Output shape of an ``Einsum`` and the product of its summed-over index sizes (its MACs per
    output element), e.g. ``bhlk,bhtk->bhlt`` on (1,2,5,8), (1,2,7,8): (1,2,5,7) and 8."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"equation '{equation}' has {len(terms)} operands, the node {len(shapes)}")
    sizes: dict[str, int] = {}
    ellipsis: Shape = ()
    for term, shape in zip(terms, shapes, strict=True):
        if "..." in term:
            head, tail = term.split("...")
            n_ell = len(shape) - len(head) - len(tail)
            ellipsis = _broadcast([ellipsis, tuple(shape[len(head):len(head) + n_ell])])
            term, shape = head + tail, (*shape[:len(head)], *shape[len(head) + n_ell:])
        if len(term) != len(shape):
            raise ValueError(f"einsum operand '{term}' does not match shape {tuple(shape)}")
        for c, d in zip(term, shape, strict=True):
            sizes[c] = max(sizes.get(c, 1), int(d))  # a 1 broadcasts
    if not arrow:  # implicit output: the indices that occur once, in alphabetical order
        letters = lhs.replace(".", "").replace(",", "")
        rhs = ("..." if "..." in lhs else "") + "".join(sorted(c for c in set(letters)
                                                                if letters.count(c) == 1))
    pre, _, post = rhs.partition("...")
    out = (*[sizes[c] for c in pre], *(ellipsis if "..." in rhs else ()), *[sizes[c] for c in post])
    return out, math.prod(d for c, d in sizes.items() if c not in pre + post)


def infer_shapes(
    op: str, attrs: Attrs, shapes: list[Shape | None], vals: Vals, n_outputs: int = 1
) -> list[Shape] | None:
    """Output shapes of one node from its input shapes and constant inputs, or None."""
    x = shapes[0] if shapes else None
    if x is None and op not in ("Concat", "ConstantOfShape"):
        return None
    if op in UNARY_SHAPE_OPS:
        return [x]
    if op in BROADCAST_OPS:
        if any(s is None for s in shapes):
            return None
        return [_broadcast([s for s in shapes if s is not None])]
    if op in ("Conv", "MaxPool", "AveragePool", "LpPool"):
        kernel = attrs.get("kernel_shape") or list(shapes[1][2:])
        dilation = attrs.get("dilations", [1] * len(kernel))
        channels = shapes[1][0] if op == "Conv" else x[1]
        return [(x[0], channels, *_window_out(attrs, x, kernel, dilation))]
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return [(*x[:2], *([1] * (len(x) - 2)))]
    if op == "Gemm":
        m = x[1] if attrs.get("transA") else x[0]
        n = shapes[1][0] if attrs.get("transB") else shapes[1][1]
        return [(m, n)]
    if op == "MatMul":
        a, b = x, shapes[1]
        batch = _broadcast([a[:-2], b[:-2]]) if len(a) > 1 and len(b) > 1 else ()
        return [(*batch, *a[:-1][-1:], *b[-1:])] if len(b) > 1 else [tuple(a[:-1])]
    if op == "Reshape" and vals[1] is not None:
        return [_reshape_target(x, vals[1].ravel(), attrs.get("allowzero", 0))]
    if op == "Flatten":
        axis = attrs.get("axis", 1) % max(len(x), 1)
        return [(math.prod(x[:axis]), math.prod(x[axis:]))]
    if op == "Transpose":
        perm = attrs.get("perm") or list(reversed(range(len(x))))
        return [tuple(x[p] for p in perm)]
    if op in ("Squeeze", "Unsqueeze", "Slice", "Expand", "Tile", "Gather", "Concat", "ConstantOfShape"):
        # evaluate the data-movement op on a zero array of the right shape: exact semantics
        # (broadcast_to: no memory for the inputs; only a copying op allocates its int8 output)
        dummy = [np.broadcast_to(np.int8(0), s) if v is None and s is not None else v
                 for s, v in zip(shapes, vals, strict=False)]
        if any(d is None for d in dummy[:1]) or math.prod(x or ()) > MAX_SHAPE_ELEMENTS:
            return None
        out = FOLDERS[op](attrs, dummy)
        return [tuple(int(d) for d in out[0].shape)]
    if op == "Split":
        axis = attrs.get("axis", 0) % len(x)
        sizes = attrs.get("split") or (vals[1].ravel().tolist() if len(vals) > 1 and vals[1] is not None
                                       else None)
        sizes = sizes or [x[axis] // n_outputs] * n_outputs
        return [tuple(int(s) if i == axis else d for i, d in enumerate(x)) for s in sizes]
    if op in ("Resize", "Upsample"):
        sizes = vals[3] if len(vals) > 3 else None
        if sizes is not None and np.asarray(sizes).size:
            return [tuple(int(d) for d in np.asarray(sizes).ravel())]
        scales = attrs.get("scales") or (vals[2] if op == "Resize" and len(vals) > 2 else vals[1])
        if scales is None or not np.asarray(scales).size:
            return None
        return [tuple(math.floor(d * s) for d, s in zip(x, np.asarray(scales).ravel(), strict=False))]
    if op == "Einsum":
        if any(s is None for s in shapes):
            return None
        try:
            return [einsum_dims(str(attrs.get("equation", "")), shapes)[0]]  # type: ignore[arg-type]
        except (ValueError, KeyError):  # a malformed equation: the caller names the node
            return None
    if op == "Pad":
        pads = attrs.get("pads") or (vals[1].ravel().tolist() if vals[1] is not None else None)
        if pads is None:
            return None
        nd = len(x)
        return [tuple(x[i] + int(pads[i]) + int(pads[i + nd]) for i in range(nd))]
    if op.startswith("Reduce") or op in ("ArgMax", "ArgMin"):
        axes = _axes(attrs, vals) if op != "ArgMax" and op != "ArgMin" else [attrs.get("axis", 0)]
        axes = list(range(len(x))) if not axes else [a % len(x) for a in axes]
        keep = attrs.get("keepdims", 1)
        return [tuple(1 if i in axes else d for i, d in enumerate(x) if keep or i not in axes)]
    return None


#: ops whose single output has the shape of their first input
UNARY_SHAPE_OPS = frozenset({
    "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu", "Erf", "Softmax",
    "LogSoftmax", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish", "Sqrt",
    "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Not",
    "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LRN",
    "Cast", "CastLike", "Identity", "Dropout", "IsNaN", "IsInf", "ThresholdedRelu", "Shrink",
})
#: ops whose output has the broadcast shape of all their inputs
BROADCAST_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Sum", "Mean", "Where", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "BitShift",
})
