"""Short English descriptions of ArchGraph nodes, the input of the language encoders.

Texts name the operator and the few numbers that define it (kernel, stride, channels, shapes) in
the words a model card would use, so that a pretrained sentence encoder places related operators
near each other ("Conv 3x3 ... 64->128 ch" near "Conv 3x3 ... 64->96 ch", far from "Softmax").
Exact numbers also reach the model as explicit features elsewhere, so texts stay short.

``TEMPLATE_VERSION`` is part of every embedding cache key: bump it whenever a phrasing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledgformer.graph.ir import ArchGraph, Node

#: bump when any phrasing below changes (embedding caches key on it)
TEMPLATE_VERSION = 1

#: NAS cell operations, recognised by the name the search space gives them (``Node.raw_op``)
CELL_OPS: dict[str, str] = {
    "nor_conv_3x3": "ReLU-Conv 3x3-BN (NAS-Bench-201 cell op)",
    "nor_conv_1x1": "ReLU-Conv 1x1-BN (NAS-Bench-201 cell op)",
    "avg_pool_3x3": "Avg pool 3x3 (NAS-Bench-201 cell op)",
    "skip_connect": "Skip connection",
    "none": "Zero (none)",
    "conv3x3-bn-relu": "Conv 3x3-BN-ReLU (NAS-Bench-101 cell op)",
    "conv1x1-bn-relu": "Conv 1x1-BN-ReLU (NAS-Bench-101 cell op)",
    "maxpool3x3": "Max pool 3x3 (NAS-Bench-101 cell op)",
}

#: ops described by a name and their output shape only
_SIMPLE: dict[str, str] = {
    "relu": "ReLU", "relu6": "ReLU6", "clip": "Clip", "leaky_relu": "LeakyReLU", "elu": "ELU",
    "sigmoid": "Sigmoid", "hardsigmoid": "Hard sigmoid", "hardswish": "Hard swish",
    "swish": "Swish (SiLU)", "tanh": "Tanh", "gelu": "GELU", "erf": "Erf", "softmax": "Softmax",
    "softplus": "Softplus", "sqrt": "Sqrt", "exp": "Exp", "output": "output",
}
#: pooled over the whole map: the input shape is the informative one
_GLOBAL_POOLS: dict[str, str] = {"global_avgpool": "Global avg pool", "global_maxpool": "Global max pool"}
#: element-wise ops of several inputs ("Add of 2 inputs")
_NARY: dict[str, str] = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow"}
#: ops that move or reshape data, described as "in -> out"
_MOVES: dict[str, str] = {
    "slice": "Slice", "gather": "Gather", "transpose": "Transpose", "reshape": "Reshape",
    "flatten": "Flatten", "squeeze": "Squeeze", "pad": "Pad", "expand": "Expand", "cast": "Cast",
    "resize": "Resize", "reduce_mean": "ReduceMean",
}


def fmt_shape(shape: Sequence[int]) -> str:
    """``(1, 64, 56, 56)`` -> ``"1x64x56x56"`` (a scalar is ``"scalar"``)."""
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _window(value: Any) -> str:
    """Kernel/stride attribute as text: ``(3, 3)`` -> ``"3x3"``; a plain int stays itself."""
    if isinstance(value, (tuple, list)):
        return "x".join(str(int(v)) for v in value)
    return str(int(value))


def _stride(value: Any) -> str:
    """Strides are written once when equal on every axis (``stride 2``), else ``2x1``."""
    if isinstance(value, (tuple, list)) and len(set(value)) == 1:
        return str(int(value[0]))
    return _window(value)


def _in(node: Node) -> tuple[int, ...] | None:
    return tuple(node.input_shapes[0]) if node.input_shapes else None


def _out(node: Node) -> tuple[int, ...] | None:
    return tuple(node.output_shapes[0]) if node.output_shapes else None


def _join(*parts: str | None) -> str:
    return ", ".join(p for p in parts if p)


def _io(node: Node) -> str | None:
    """``in 1x64x56x56, out 1x128x28x28`` with whichever shapes are known."""
    i, o = _in(node), _out(node)
    return _join(f"in {fmt_shape(i)}" if i is not None else None,
                 f"out {fmt_shape(o)}" if o is not None else None) or None


def _shape(node: Node) -> str | None:
    o = _out(node) if node.output_shapes else _in(node)
    return fmt_shape(o) if o is not None else None


def _channels(node: Node, key: str, shape: tuple[int, ...] | None) -> int | None:
    if key in node.attrs:
        return int(node.attrs[key])
    return int(shape[1]) if shape is not None and len(shape) > 1 else None


def _kernel(node: Node) -> str | None:
    if "kernel" in node.attrs:
        return _window(node.attrs["kernel"])
    weights = node.attrs.get("weight_shapes") or ()
    return _window(weights[0][2:]) if weights and len(weights[0]) > 2 else None


def _conv(node: Node) -> str:
    a = node.attrs
    cin = _channels(node, "in_channels", _in(node))
    cout = _channels(node, "out_channels", _out(node))
    groups = int(a.get("groups", 1))
    kernel, stride = _kernel(node), a.get("stride")
    depthwise = node.op == "conv" and cin is not None and cin > 1 and groups == cin
    name = "Depthwise conv" if depthwise else ("Transposed conv" if node.op == "conv_transpose" else "Conv")
    head = " ".join(filter(None, [
        name, kernel,
        f"stride {_stride(stride)}" if stride is not None else None,
        f"groups {groups}" if not depthwise else None,
        f"dilation {_stride(a['dilation'])}" if a.get("dilation") not in (None, 1, (1,), (1, 1), (1, 1, 1))
        else None,
    ]))
    if depthwise:
        ch = f"{cin} ch" if cout in (None, cin) else f"{cin}->{cout} ch"
    else:
        ch = f"{cin}->{cout} ch" if cin is not None and cout is not None else None
    return _join(head, ch, _io(node))


def _gemm(node: Node) -> str:
    i, o = _in(node), _out(node)
    fin = node.attrs.get("in_features", i[-1] if i else None)
    fout = node.attrs.get("out_features", o[-1] if o else None)
    head = f"Linear {fin}->{fout}" if fin is not None and fout is not None else "Linear"
    # token-wise linear layers (transformers) run over many rows: say how many
    tokens = f"in {fmt_shape(i)}" if i is not None and len(i) > 2 else None
    return _join(head, tokens)


def _matmul(node: Node) -> str:
    shapes = " x ".join(fmt_shape(s) for s in node.input_shapes[:2])
    return f"MatMul {shapes}".rstrip()


def _norm(node: Node) -> str:
    shape = _shape(node)
    o = _out(node) or _in(node)
    if node.op == "batchnorm":
        ch = _channels(node, "channels", o)
        return _join(f"Batch norm {ch} ch" if ch is not None else "Batch norm", shape)
    if node.op == "layernorm":
        return _join(f"Layer norm {o[-1]}" if o else "Layer norm", shape)
    if node.op == "groupnorm":
        groups = node.attrs.get("num_groups")
        return _join("Group norm" + (f" {groups} groups" if groups else ""), shape)
    size = node.attrs.get("size")
    return _join("Local response norm" + (f" size {size}" if size else ""), shape)


def _pool(node: Node) -> str:
    name = "Max pool" if node.op == "maxpool" else "Avg pool"
    stride = node.attrs.get("stride")
    head = " ".join(filter(None, [name, _kernel(node),
                                  f"stride {_stride(stride)}" if stride is not None else None]))
    return _join(head, _io(node))


def _of_inputs(n: int) -> str:
    return f" of {n} input{'s' if n != 1 else ''}" if n else ""


def _nary(node: Node) -> str:
    return _join(_NARY[node.op] + _of_inputs(len(node.input_shapes)), _shape(node))


def _elementwise(node: Node) -> str:
    raw = node.raw_op if node.raw_op and node.raw_op != node.op else ""
    return _join(f"Element-wise {raw}".strip(), _shape(node))


def _move(node: Node) -> str:
    i, o = _in(node), _out(node)
    name = _MOVES[node.op]
    if node.op == "resize" and node.attrs.get("mode"):
        name += f" {node.attrs['mode']}"
    if i is not None and o is not None:
        return f"{name} {fmt_shape(i)} -> {fmt_shape(o)}"
    return _join(name, _shape(node))


def _reduce(node: Node) -> str:
    raw = node.raw_op if node.raw_op and node.raw_op != node.op else ""
    return _join(f"Reduce {raw}".strip(), _io(node))


def _concat(node: Node) -> str:
    o = _out(node)
    out = f"out {fmt_shape(o)}" if o is not None else None
    return _join("Concat" + _of_inputs(len(node.input_shapes)), out)


def _split(node: Node) -> str:
    n = len(node.output_shapes)
    i = _in(node)
    return _join("Split" + (f" into {n}" if n else ""), f"in {fmt_shape(i)}" if i is not None else None)


def _global_pool(node: Node) -> str:
    i = _in(node)
    return _join(_GLOBAL_POOLS[node.op], f"in {fmt_shape(i)}" if i is not None else _shape(node))


def _input(node: Node) -> str:
    o = _out(node)
    return f"input {fmt_shape(o)}" if o is not None else "input"


def _unknown(node: Node) -> str:
    return _join(f"Unknown op {node.raw_op}".strip(), _io(node))


_PHRASERS: dict[str, Callable[[Node], str]] = {
    "input": _input, "conv": _conv, "conv_transpose": _conv, "gemm": _gemm, "matmul": _matmul,
    "batchnorm": _norm, "layernorm": _norm, "groupnorm": _norm, "lrn": _norm,
    "maxpool": _pool, "avgpool": _pool, "elementwise": _elementwise, "reduce": _reduce,
    "concat": _concat, "split": _split, "unknown": _unknown,
    "identity": lambda node: "Skip connection", "zero": lambda node: "Zero (none)",
    **{op: _nary for op in _NARY}, **{op: _move for op in _MOVES},
    **{op: _global_pool for op in _GLOBAL_POOLS},
    **{op: (lambda node, _name=name: _join(_name, _shape(node))) for op, name in _SIMPLE.items()},
}


def node_text(node: Node) -> str:
    """One short description of ``node`` (the language model's view of the operator)."""
    cell = CELL_OPS.get(node.raw_op)
    if cell is not None:
        # cell graphs may carry channels/shapes (a macro network) or none (a bare cell)
        o = _out(node)
        return _join(cell, f"{o[1]} ch, {fmt_shape(o)}" if o is not None and len(o) == 4 else None)
    phrase = _PHRASERS.get(node.op, _unknown)
    return phrase(node)


def graph_texts(graph: ArchGraph) -> list[str]:
    """``node_text`` of every node, in the graph's (topological) node order."""
    return [node_text(n) for n in graph.nodes]


__all__ = ["CELL_OPS", "TEMPLATE_VERSION", "fmt_shape", "graph_texts", "node_text"]
