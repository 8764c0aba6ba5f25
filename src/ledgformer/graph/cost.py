"""Cost formulas: MACs, FLOPs, parameters and memory traffic of one node.

One mechanism for every source: a node states its op, its activation ``input_shapes`` and
``output_shapes`` and, in ``attrs["weight_shapes"]``, the shapes of the trainable tensors it
holds (conv weight and bias, BN scale and shift, a positional embedding added in a ViT ...).
``annotate`` derives the four costs from those; the ONNX importer and the search-space builders
only have to fill shapes and attributes.

Conventions (documented in the README):
* MACs only for conv, conv_transpose, gemm and matmul (the published "FLOPs" of CNNs).
* FLOPs = 2 x MACs (+ bias adds) for those, and ``FLOPS_PER_ELEMENT[op]`` x elements for the rest
  (output elements; for pools, output elements x window; for reductions, input elements).
* params = sum of ``weight_shapes`` element counts (BN's running statistics are buffers, not
  parameters, and are listed in ``attrs["buffer_shapes"]``).
* mem_bytes = (activation inputs + weights + buffers + outputs) x ``dtype_bytes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ledgformer.graph.ir import Node

#: FLOPs per element for the non-MAC ops (approximate arithmetic work of one element)
FLOPS_PER_ELEMENT: dict[str, int] = {
    "batchnorm": 2, "layernorm": 8, "groupnorm": 8, "lrn": 5,
    "relu": 1, "relu6": 1, "clip": 1, "leaky_relu": 1, "elu": 3, "sigmoid": 4, "hardsigmoid": 3,
    "hardswish": 4, "swish": 5, "tanh": 5, "gelu": 8, "erf": 5, "softmax": 5, "softplus": 4,
    "add": 1, "sub": 1, "mul": 1, "div": 1, "pow": 1, "sqrt": 1, "exp": 1, "elementwise": 1,
    "resize": 4, "reduce_mean": 1, "reduce": 1,
}
#: ops whose FLOPs scale with the pooling window
_POOLS = {"maxpool", "avgpool"}
_GLOBAL_POOLS = {"global_avgpool", "global_maxpool"}
_REDUCTIONS = {"reduce_mean", "reduce"}


def numel(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape) if shape else 1


def _total(shapes: Iterable[Sequence[int]]) -> int:
    return sum(numel(s) for s in shapes)


def node_macs(node: Node) -> int:
    """Multiply-accumulates of a compute-heavy node (0 for the rest)."""
    a = node.attrs
    out = node.output_shapes[0] if node.output_shapes else ()
    if node.op == "conv":
        # each output element: (in_channels / groups) x kernel window MACs
        cin_per_group = int(a["in_channels"]) // int(a.get("groups", 1))
        return numel(out) * cin_per_group * numel(a["kernel"])
    if node.op == "conv_transpose":
        # each input element scatters into (out_channels / groups) x kernel window outputs
        inp = node.input_shapes[0]
        cout_per_group = int(a["out_channels"]) // int(a.get("groups", 1))
        return numel(inp) * cout_per_group * numel(a["kernel"])
    if node.op == "gemm":
        return numel(out) * int(a["in_features"])
    if node.op == "matmul":
        # (..., M, K) x (..., K, N): each output element takes K MACs (an einsum says its K)
        last = node.input_shapes[0][-1] if node.input_shapes and node.input_shapes[0] else 1
        return numel(out) * int(a.get("reduce", last))
    return 0


def node_flops(node: Node, macs: int) -> int:
    if node.op in ("conv", "conv_transpose", "gemm", "matmul"):
        bias = numel(node.output_shapes[0]) if node.attrs.get("bias") and node.output_shapes else 0
        return 2 * macs + bias
    out = _total(node.output_shapes)
    if node.op in _POOLS:
        return out * numel(node.attrs.get("kernel", (1,)))
    if node.op in _GLOBAL_POOLS or node.op in _REDUCTIONS:
        return _total(node.input_shapes[:1])
    return out * FLOPS_PER_ELEMENT.get(node.op, 0)


def annotate(node: Node, dtype_bytes: int = 4) -> Node:
    """Fill ``macs``, ``flops``, ``params`` and ``mem_bytes`` of ``node`` in place; return it."""
    weights = node.attrs.get("weight_shapes", ())
    buffers = node.attrs.get("buffer_shapes", ())
    node.macs = node_macs(node)
    node.flops = node_flops(node, node.macs)
    node.params = _total(weights)
    node.mem_bytes = dtype_bytes * (
        _total(node.input_shapes) + node.params + _total(buffers) + _total(node.output_shapes)
    )
    return node


def conv_output_hw(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: Sequence[int],
    dilation: Sequence[int],
) -> tuple[int, ...]:
    """Spatial output size of a convolution/pool; ``pads`` is ONNX-style (begins..., ends...)."""
    nd = len(size)
    return tuple(
        (size[i] + pads[i] + pads[i + nd] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
        for i in range(nd)
    )
