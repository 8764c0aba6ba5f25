"""Classic CNN families (ResNet, VGG, AlexNet, SqueezeNet, GoogLeNet, DenseNet): config samplers + builders.

Each family has ``sample(rng) -> config`` (plain JSON values) and ``build(config) -> nn.Module``.
The topology follows the published network; depth, width, kernel size, expansion and input
resolution are drawn so that variants stay small enough to time quickly on a CPU.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor, nn

from ledgformer.families.layers import RESOLUTIONS, Classifier, conv_bn, make_divisible

Config = dict[str, Any]


# ---- ResNet ---------------------------------------------------------------------------------


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, k: int, bottleneck: bool, expansion: int) -> None:
        super().__init__()
        if bottleneck:
            mid = max(8, cout // expansion)
            self.body = nn.Sequential(
                conv_bn(cin, mid, 1), conv_bn(mid, mid, k, stride), conv_bn(mid, cout, 1, act=None)
            )
        else:
            self.body = nn.Sequential(conv_bn(cin, cout, k, stride), conv_bn(cout, cout, k, act=None))
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.short(x))


def sample_resnet(rng: random.Random) -> Config:
    bottleneck = rng.random() < 0.4
    return {
        "block": "bottleneck" if bottleneck else "basic",
        "depths": [rng.randint(1, 3) for _ in range(4)],
        "width": rng.choice([16, 24, 32, 48, 64]),
        "kernel": rng.choice([3, 3, 5]),
        "stem_kernel": rng.choice([3, 7]),
        "expansion": rng.choice([2, 4]) if bottleneck else 1,
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_resnet(cfg: Config) -> nn.Module:
    bottleneck = cfg["block"] == "bottleneck"
    w = cfg["width"]
    layers: list[nn.Module] = [conv_bn(3, w, cfg["stem_kernel"], 2), nn.MaxPool2d(3, 2, 1)]
    cin = w
    for stage, depth in enumerate(cfg["depths"]):
        cout = w * 2**stage * cfg["expansion"]
        for i in range(depth):
            layers.append(
                _ResBlock(
                    cin, cout, 2 if i == 0 and stage > 0 else 1, cfg["kernel"], bottleneck, cfg["expansion"]
                )
            )
            cin = cout
    layers.append(Classifier(cin, 1000))
    return nn.Sequential(*layers)


# ---- VGG ------------------------------------------------------------------------------------


def sample_vgg(rng: random.Random) -> Config:
    return {
        "convs": [rng.randint(1, 3) for _ in range(5)],
        "width": rng.choice([8, 16, 24, 32]),
        "batchnorm": rng.random() < 0.5,
        "kernel": rng.choice([3, 3, 5]),
        "hidden": rng.choice([256, 512, 1024]),
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_vgg(cfg: Config) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for stage, n in enumerate(cfg["convs"]):
        cout = cfg["width"] * 2 ** min(stage, 3)
        for _ in range(n):
            layers.append(conv_bn(cin, cout, cfg["kernel"], bn=cfg["batchnorm"]))
            cin = cout
        layers.append(nn.MaxPool2d(2, 2))
    side = cfg["resolution"] // 32
    h = cfg["hidden"]
    layers += [
        nn.Flatten(),
        nn.Linear(cin * side * side, h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, 1000),
    ]
    return nn.Sequential(*layers)


# ---- AlexNet --------------------------------------------------------------------------------


def sample_alexnet(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.25, 0.5, 0.75]),
        "kernel1": rng.choice([7, 11]),
        "kernel2": rng.choice([3, 5]),
        "convs3": rng.randint(1, 3),
        "hidden": rng.choice([512, 1024, 2048]),
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_alexnet(cfg: Config) -> nn.Module:
    c1, c2, c3, c4 = (make_divisible(c * cfg["width"]) for c in (64, 192, 384, 256))
    k1, k2 = cfg["kernel1"], cfg["kernel2"]
    layers: list[nn.Module] = [
        nn.Conv2d(3, c1, k1, 4, 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, k2, 1, k2 // 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, 1, 1),
        nn.ReLU(),
    ]
    cin = c3
    for _ in range(cfg["convs3"]):
        layers += [nn.Conv2d(cin, c4, 3, 1, 1), nn.ReLU()]
        cin = c4
    layers.append(nn.MaxPool2d(3, 2))
    side = (cfg["resolution"] + 4 - k1) // 4 + 1
    for _ in range(3):
        side = (side - 3) // 2 + 1
    h = cfg["hidden"]
    layers += [
        nn.Flatten(),
        nn.Linear(cin * side * side, h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, 1000),
    ]
    return nn.Sequential(*layers)


# ---- SqueezeNet -----------------------------------------------------------------------------


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = conv_bn(cin, squeeze, 1, bn=False)
        self.e1 = conv_bn(squeeze, e1, 1, bn=False)
        self.e3 = conv_bn(squeeze, e3, 3, bn=False)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def sample_squeezenet(rng: random.Random) -> Config:
    return {
        "version": rng.choice(["1.0", "1.1"]),
        "squeeze_ratio": rng.choice([0.125, 0.25]),
        "base_expand": rng.choice([32, 64, 96, 128]),
        "pct_3x3": rng.choice([0.25, 0.5, 0.75]),
        "fires": [rng.randint(1, 3) for _ in range(3)],
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_squeezenet(cfg: Config) -> nn.Module:
    stem = conv_bn(3, 96, 7, 2, bn=False) if cfg["version"] == "1.0" else conv_bn(3, 64, 3, 2, bn=False)
    layers: list[nn.Module] = [stem, nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = 96 if cfg["version"] == "1.0" else 64
    for stage, n in enumerate(cfg["fires"]):
        for i in range(n):
            expand = cfg["base_expand"] * (1 + stage) + (cfg["base_expand"] // 2 if i % 2 else 0)
            e3 = make_divisible(expand * cfg["pct_3x3"])
            e1 = max(8, make_divisible(expand) - e3)
            layers.append(_Fire(cin, make_divisible(expand * cfg["squeeze_ratio"]), e1, e3))
            cin = e1 + e3
        if stage < 2:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
    layers += [nn.Conv2d(cin, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


# ---- GoogLeNet ------------------------------------------------------------------------------

#: torchvision GoogLeNet inception settings (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per stage
_INCEPTION = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    (
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)


class _Inception(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...], k5: int) -> None:
        super().__init__()
        c1, c3r, c3, c5r, c5, pp = widths
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, k5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, pp, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def sample_googlenet(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.25, 0.375, 0.5]),
        "blocks": [rng.randint(1, 2), rng.randint(2, 5), rng.randint(1, 2)],
        "kernel_5x5": rng.choice([3, 5]),
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_googlenet(cfg: Config) -> nn.Module:
    def scale(c: int) -> int:
        return make_divisible(c * cfg["width"])

    layers: list[nn.Module] = [
        conv_bn(3, scale(64), 7, 2),
        nn.MaxPool2d(3, 2, 1),
        conv_bn(scale(64), scale(64), 1),
        conv_bn(scale(64), scale(192), 3),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = scale(192)
    for stage, n in enumerate(cfg["blocks"]):
        for i in range(n):
            widths = tuple(scale(c) for c in _INCEPTION[stage][i % len(_INCEPTION[stage])])
            layers.append(_Inception(cin, widths, cfg["kernel_5x5"]))
            cin = widths[0] + widths[2] + widths[4] + widths[5]
        if stage < 2:
            layers.append(nn.MaxPool2d(3, 2, 1))
    layers.append(Classifier(cin, 1000))
    return nn.Sequential(*layers)


# ---- DenseNet -------------------------------------------------------------------------------


class _DenseBlock(nn.Module):
    def __init__(self, cin: int, layers: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(cin + i * growth),
                nn.ReLU(),
                nn.Conv2d(cin + i * growth, bn_size * growth, 1, bias=False),
                nn.BatchNorm2d(bn_size * growth),
                nn.ReLU(),
                nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False),
            )
            for i in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


def sample_densenet(rng: random.Random) -> Config:
    return {
        "growth": rng.choice([8, 12, 16, 24, 32]),
        "blocks": [rng.randint(2, 6), rng.randint(2, 8), rng.randint(2, 10), rng.randint(2, 6)],
        "bn_size": rng.choice([2, 4]),
        "compression": 0.5,
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_densenet(cfg: Config) -> nn.Module:
    g = cfg["growth"]
    cin = 2 * g
    layers: list[nn.Module] = [conv_bn(3, cin, 7, 2), nn.MaxPool2d(3, 2, 1)]
    for i, n in enumerate(cfg["blocks"]):
        layers.append(_DenseBlock(cin, n, g, cfg["bn_size"]))
        cin += n * g
        if i < len(cfg["blocks"]) - 1:
            cout = int(cin * cfg["compression"])
            layers += [
                nn.BatchNorm2d(cin),
                nn.ReLU(),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.AvgPool2d(2, 2),
            ]
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), Classifier(cin, 1000)]
    return nn.Sequential(*layers)


__all__ = [
    "build_alexnet",
    "build_densenet",
    "build_googlenet",
    "build_resnet",
    "build_squeezenet",
    "build_vgg",
    "sample_alexnet",
    "sample_densenet",
    "sample_googlenet",
    "sample_resnet",
    "sample_squeezenet",
    "sample_vgg",
]
