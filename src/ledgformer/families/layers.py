"""Small torch building blocks shared by the family builders (conv-BN-act, squeeze-excite, MBConv)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from torch import Tensor, nn

#: input resolutions the image-classification families draw from
RESOLUTIONS = (64, 96, 128, 160, 192, 224)


def act_layer(name: str) -> nn.Module:
    """A fresh activation module by name (relu, relu6, hswish, swish, sigmoid, hsigmoid)."""
    return {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hswish": nn.Hardswish,
        "swish": nn.SiLU,
        "sigmoid": nn.Sigmoid,
        "hsigmoid": nn.Hardsigmoid,
    }[name]()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (never below it, never 10% under)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def conv_bn(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu", bn: bool = True
) -> nn.Sequential:
    """Conv (same padding) + optional BatchNorm + optional activation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if act:
        layers.append(act_layer(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, reduce, act, expand, gate, scale."""

    def __init__(self, channels: int, reduced: int, act: str = "relu", gate: str = "sigmoid") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = act_layer(act)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = act_layer(gate)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, optional SE, 1x1 project, skip when shapes match."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        expand: float,
        act: str = "relu6",
        se: float = 0.0,
        se_gate: str = "sigmoid",
        se_base: int | None = None,
    ) -> None:
        super().__init__()
        mid = make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(conv_bn(cin, mid, 1, act=act))
        layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=act))
        if se > 0:
            layers.append(
                SqueezeExcite(
                    mid,
                    max(1, int((se_base or mid) * se)),
                    act="swish" if act == "swish" else "relu",
                    gate=se_gate,
                )
            )
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class Classifier(nn.Module):
    """Global average pool, flatten, optional hidden layer, linear."""

    def __init__(self, cin: int, classes: int, hidden: int | None = None, act: str = "relu") -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(cin, hidden), act_layer(act)]
            cin = hidden
        layers.append(nn.Linear(cin, classes))
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(x).flatten(1))


def pick(rng: random.Random, options: Sequence[object]) -> object:
    """One of ``options`` (typed helper so configs stay JSON-plain)."""
    return options[rng.randrange(len(options))]


__all__ = [
    "RESOLUTIONS",
    "Classifier",
    "MBConv",
    "SqueezeExcite",
    "act_layer",
    "conv_bn",
    "make_divisible",
    "pick",
]
