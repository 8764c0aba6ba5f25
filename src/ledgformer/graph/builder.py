"""GraphBuilder: write a whole network as an ArchGraph directly, without PyTorch or ONNX.

Search-space builders (NAS-Bench-201/101 networks, FBNet, OFA, MnasNet, model families) use it
to produce graphs with exact shapes and costs thousands of times faster than exporting a
``torch.nn.Module``. Each method takes the producing node(s), appends one node with shapes and
costs filled by ``ledgformer.graph.cost.annotate``, and returns its handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgformer.graph.cost import annotate, conv_output_hw
from ledgformer.graph.ir import ArchGraph, Node, Shape


@dataclass(frozen=True)
class T:
    """A tensor handle: the node that produced it and its shape."""

    node: int
    shape: Shape


class GraphBuilder:
    """Accumulates nodes and edges; ``build()`` returns the ArchGraph."""

    def __init__(self, dtype_bytes: int = 4, **meta: Any) -> None:
        self.nodes: list[Node] = []
        self.edges: list[tuple[int, int]] = []
        self.meta = meta
        self.dtype_bytes = dtype_bytes

    def add(self, op: str, inputs: list[T], out_shape: Shape, name: str = "", **attrs: Any) -> T:
        """Append a node of ``op`` fed by ``inputs``; costs are derived from shapes/attrs."""
        node = Node(
            op=op,
            name=name or f"{op}_{len(self.nodes)}",
            attrs=attrs,
            input_shapes=[t.shape for t in inputs],
            output_shapes=[tuple(out_shape)],
            raw_op=attrs.pop("raw_op", op),
        )
        annotate(node, self.dtype_bytes)
        idx = len(self.nodes)
        self.nodes.append(node)
        self.edges.extend((t.node, idx) for t in inputs)
        return T(idx, tuple(out_shape))

    def input(self, shape: Shape, name: str = "input") -> T:
        self.meta.setdefault("input_shape", tuple(shape))
        self.meta.setdefault("batch_size", int(shape[0]))
        return self.add("input", [], shape, name=name)

    def conv(
        self, x: T, out_channels: int, kernel: int, stride: int = 1, padding: int | None = None,
        groups: int = 1, dilation: int = 1, bias: bool = False, name: str = "",
    ) -> T:
        n, c, h, w = x.shape
        pad = (kernel - 1) // 2 * dilation if padding is None else padding
        oh, ow = conv_output_hw((h, w), (kernel, kernel), (stride, stride), (pad,) * 4, (dilation,) * 2)
        weights: list[Shape] = [(out_channels, c // groups, kernel, kernel)]
        if bias:
            weights.append((out_channels,))
        return self.add(
            "conv", [x], (n, out_channels, oh, ow), name=name, kernel=(kernel, kernel),
            stride=(stride, stride), pads=(pad,) * 4, dilation=(dilation, dilation), groups=groups,
            in_channels=c, out_channels=out_channels, bias=bias, weight_shapes=weights,
        )

    def batchnorm(self, x: T, name: str = "") -> T:
        c = x.shape[1]
        return self.add("batchnorm", [x], x.shape, name=name, channels=c,
                        weight_shapes=[(c,), (c,)], buffer_shapes=[(c,), (c,)])

    def act(self, x: T, op: str = "relu", name: str = "") -> T:
        return self.add(op, [x], x.shape, name=name)

    def pool(self, x: T, op: str, kernel: int, stride: int, padding: int = 0, name: str = "") -> T:
        n, c, h, w = x.shape
        oh, ow = conv_output_hw((h, w), (kernel, kernel), (stride, stride), (padding,) * 4, (1, 1))
        return self.add(op, [x], (n, c, oh, ow), name=name, kernel=(kernel, kernel),
                        stride=(stride, stride), pads=(padding,) * 4)

    def global_pool(self, x: T, op: str = "global_avgpool", name: str = "") -> T:
        n, c = x.shape[:2]
        return self.add(op, [x], (n, c, 1, 1), name=name)

    def eltwise(self, xs: list[T], op: str = "add", name: str = "") -> T:
        return self.add(op, xs, xs[0].shape, name=name)

    def concat(self, xs: list[T], axis: int = 1, name: str = "") -> T:
        shape = list(xs[0].shape)
        shape[axis] = sum(t.shape[axis] for t in xs)
        return self.add("concat", xs, tuple(shape), name=name, axis=axis)

    def flatten(self, x: T, name: str = "") -> T:
        n = x.shape[0]
        rest = 1
        for d in x.shape[1:]:
            rest *= d
        return self.add("flatten", [x], (n, rest), name=name)

    def linear(self, x: T, out_features: int, bias: bool = True, name: str = "") -> T:
        in_features = x.shape[-1]
        weights: list[Shape] = [(out_features, in_features)] + ([(out_features,)] if bias else [])
        return self.add("gemm", [x], (*x.shape[:-1], out_features), name=name,
                        in_features=in_features, out_features=out_features, bias=bias,
                        weight_shapes=weights)

    def squeeze_excite(
        self, x: T, mid_channels: int, act: str = "relu", gate: str = "sigmoid", name: str = "",
    ) -> T:
        """Squeeze-excite: global pool, 1x1 conv + ``act``, 1x1 conv + ``gate``, ``x * scale``."""
        p = name or f"se_{len(self.nodes)}"
        s = self.global_pool(x, name=f"{p}.pool")
        s = self.conv(s, mid_channels, 1, bias=True, name=f"{p}.reduce")
        s = self.act(s, act, name=f"{p}.act")
        s = self.conv(s, x.shape[1], 1, bias=True, name=f"{p}.expand")
        s = self.act(s, gate, name=f"{p}.gate")
        return self.eltwise([x, s], "mul", name=f"{p}.mul")

    def build(self) -> ArchGraph:
        return ArchGraph(self.nodes, self.edges, self.meta)
