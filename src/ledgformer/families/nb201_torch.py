"""NAS-Bench-201 networks as torch modules (the official ``TinyNetwork`` inference model).

Mirrors ``ledgformer.spaces.nb201.network_graph`` layer for layer (stem, 3 stages of 5 cells,
ResNet reduction blocks, BN-ReLU head): the ``none`` op is ``x.mul(0.)`` as in the official
code, so the exported ONNX shows a ``mul`` where ``network_graph`` shows a ``zero`` node.
"""

from __future__ import annotations

import random
from typing import Any

from torch import Tensor, nn

from ledgformer.spaces.nb201 import EDGES, OPS, arch_str_to_ops, ops_to_arch_str

Config = dict[str, Any]
_CELLS_PER_STAGE = 5
_STAGE_CHANNELS = (16, 32, 64)


def _relu_conv_bn(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class _Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def _edge_op(op: str, c: int) -> nn.Module:
    if op == "nor_conv_3x3":
        return _relu_conv_bn(c, c, 3, 1)
    if op == "nor_conv_1x1":
        return _relu_conv_bn(c, c, 1, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity()
    return _Zero()


class _Cell(nn.Module):
    """InferCell: cell node j is the sum of its incoming edge ops; node 3 is the output."""

    def __init__(self, ops: tuple[str, ...], c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(_edge_op(op, c) for op in ops)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for dst in (1, 2, 3):
            terms = [self.ops[i](nodes[src]) for i, (src, d) in enumerate(EDGES) if d == dst]
            out = terms[0]
            for t in terms[1:]:
                out = out + t
            nodes.append(out)
        return nodes[3]


class _Reduction(nn.Module):
    """ResNetBasicblock with stride 2 and an avgpool + 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = _relu_conv_bn(cin, cout, 3, 2)
        self.b = _relu_conv_bn(cout, cout, 3, 1)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.down(x) + self.b(self.a(x))


class NB201Network(nn.Module):
    """The whole NAS-Bench-201 network of one architecture string."""

    def __init__(self, arch: str, num_classes: int = 10) -> None:
        super().__init__()
        ops = arch_str_to_ops(arch)
        c0 = _STAGE_CHANNELS[0]
        layers: list[nn.Module] = [nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0)]
        cin = c0
        for stage, c in enumerate(_STAGE_CHANNELS):
            if stage > 0:
                layers.append(_Reduction(cin, c))
                cin = c
            layers += [_Cell(ops, c) for _ in range(_CELLS_PER_STAGE)]
        layers += [
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(cin, num_classes),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def sample_nb201(rng: random.Random) -> Config:
    arch = ops_to_arch_str([rng.choice(OPS) for _ in EDGES])
    classes, resolution = rng.choice([(10, 32), (100, 32), (120, 16), (10, 64)])
    return {"arch": arch, "num_classes": classes, "resolution": resolution}


def build_nb201(cfg: Config) -> nn.Module:
    return NB201Network(cfg["arch"], cfg["num_classes"])


__all__ = ["NB201Network", "build_nb201", "sample_nb201"]
