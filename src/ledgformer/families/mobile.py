"""Mobile CNN families (MobileNetV2/V3, MnasNet, EfficientNet, ShuffleNetV2): config samplers + builders.

Stage tables follow the published networks (MobileNetV2, MobileNetV3-Large, MnasNet-A1,
EfficientNet-B0, ShuffleNetV2); each variant redraws per-stage depth, kernel size, expansion,
squeeze-excite, the width multiplier and the input resolution.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import Tensor, nn

from ledgformer.families.layers import RESOLUTIONS, Classifier, MBConv, conv_bn, make_divisible

Config = dict[str, Any]

#: (expansion, channels, repeats, stride) of MobileNetV2
_MBV2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
#: (channels, repeats, stride, squeeze-excite, activation) of MobileNetV3-Large stages
_MBV3 = (
    (16, 1, 1, False, "relu"),
    (24, 2, 2, False, "relu"),
    (40, 3, 2, True, "relu"),
    (80, 4, 2, False, "hswish"),
    (112, 2, 1, True, "hswish"),
    (160, 3, 2, True, "hswish"),
)
#: (channels, repeats, stride, squeeze-excite) of MnasNet-A1 stages after the separable conv
_MNAS = (
    (24, 2, 2, False),
    (40, 3, 2, True),
    (80, 4, 2, False),
    (112, 2, 1, True),
    (160, 3, 2, True),
    (320, 1, 1, False),
)
#: (channels, repeats, stride) of EfficientNet-B0 stages
_EFF = ((16, 1, 1), (24, 2, 2), (40, 2, 2), (80, 3, 2), (112, 3, 1), (192, 4, 2), (320, 1, 1))
#: ShuffleNetV2 stage widths per width multiplier
_SHUFFLE = {
    "0.5": (24, 48, 96, 192, 1024),
    "1.0": (24, 116, 232, 464, 1024),
    "1.5": (24, 176, 352, 704, 1024),
}


def _mb_stack(cin: int, stages: list[dict[str, Any]], width: float, act: str) -> tuple[list[nn.Module], int]:
    """MBConv stages from per-stage dicts (c, n, s, k, e, se, act)."""
    layers: list[nn.Module] = []
    for st in stages:
        cout = make_divisible(st["c"] * width)
        for i in range(st["n"]):
            layers.append(
                MBConv(
                    cin,
                    cout,
                    st["k"],
                    st["s"] if i == 0 else 1,
                    st["e"],
                    act=st.get("act", act),
                    se=st.get("se", 0.0),
                    se_gate=st.get("gate", "sigmoid"),
                    se_base=cin if st.get("se_in") else None,
                )
            )
            cin = cout
    return layers, cin


# ---- MobileNetV2 ----------------------------------------------------------------------------


def sample_mobilenetv2(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.35, 0.5, 0.75, 1.0]),
        "expansions": [1] + [rng.choice([3, 4, 6]) for _ in _MBV2[1:]],
        "depths": [max(1, n + rng.randint(-1, 1)) for _, _, n, _ in _MBV2],
        "kernels": [rng.choice([3, 5, 7]) for _ in _MBV2],
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_mobilenetv2(cfg: Config) -> nn.Module:
    w = cfg["width"]
    stem = make_divisible(32 * w)
    stages = [
        {"c": c, "n": n, "s": s, "k": k, "e": e}
        for (_, c, _, s), n, k, e in zip(_MBV2, cfg["depths"], cfg["kernels"], cfg["expansions"], strict=True)
    ]
    body, cin = _mb_stack(stem, stages, w, "relu6")
    last = make_divisible(1280 * max(1.0, w))
    return nn.Sequential(
        conv_bn(3, stem, 3, 2, act="relu6"), *body, conv_bn(cin, last, 1, act="relu6"), Classifier(last, 1000)
    )


# ---- MobileNetV3 ----------------------------------------------------------------------------


def sample_mobilenetv3(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.5, 0.75, 1.0]),
        "depths": [max(1, n + rng.randint(-1, 1)) for _, n, *_ in _MBV3],
        "kernels": [rng.choice([3, 5]) for _ in _MBV3],
        "expansions": [1] + [rng.choice([3, 4, 6]) for _ in _MBV3[1:]],
        "se": [se and rng.random() < 0.8 for *_, se, _ in _MBV3],
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_mobilenetv3(cfg: Config) -> nn.Module:
    w = cfg["width"]
    stages = [
        {"c": c, "n": n, "s": s, "k": k, "e": e, "se": 0.25 if se else 0.0, "act": act, "gate": "hsigmoid"}
        for (c, _, s, _, act), n, k, e, se in zip(
            _MBV3, cfg["depths"], cfg["kernels"], cfg["expansions"], cfg["se"], strict=True
        )
    ]
    stem = make_divisible(16 * w)
    body, cin = _mb_stack(stem, stages, w, "relu")
    last = make_divisible(cin * 6)
    return nn.Sequential(
        conv_bn(3, stem, 3, 2, act="hswish"),
        *body,
        conv_bn(cin, last, 1, act="hswish"),
        Classifier(last, 1000, hidden=1280, act="hswish"),
    )


# ---- MnasNet --------------------------------------------------------------------------------


def sample_mnasnet(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.5, 0.75, 1.0]),
        "depths": [max(1, n + rng.randint(-1, 1)) for _, n, *_ in _MNAS],
        "kernels": [rng.choice([3, 5]) for _ in _MNAS],
        "expansions": [rng.choice([3, 6]) for _ in _MNAS],
        "se": [se and rng.random() < 0.8 for *_, se in _MNAS],
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_mnasnet(cfg: Config) -> nn.Module:
    w = cfg["width"]
    stem, sep = make_divisible(32 * w), make_divisible(16 * w)
    stages = [
        {"c": c, "n": n, "s": s, "k": k, "e": e, "se": 0.25 if se else 0.0}
        for (c, _, s, _), n, k, e, se in zip(
            _MNAS, cfg["depths"], cfg["kernels"], cfg["expansions"], cfg["se"], strict=True
        )
    ]
    body, cin = _mb_stack(sep, stages, w, "relu")
    return nn.Sequential(
        conv_bn(3, stem, 3, 2),
        conv_bn(stem, stem, 3, groups=stem),
        conv_bn(stem, sep, 1, act=None),
        *body,
        conv_bn(cin, 1280, 1),
        Classifier(1280, 1000),
    )


# ---- EfficientNet ---------------------------------------------------------------------------


def sample_efficientnet(rng: random.Random) -> Config:
    return {
        "width": rng.choice([0.5, 0.75, 1.0]),
        "depth": rng.choice([0.5, 0.75, 1.0, 1.2]),
        "kernels": [rng.choice([3, 5]) for _ in _EFF],
        "expansions": [1] + [rng.choice([4, 6]) for _ in _EFF[1:]],
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_efficientnet(cfg: Config) -> nn.Module:
    w = cfg["width"]
    stages = [
        {"c": c, "n": max(1, math.ceil(n * cfg["depth"])), "s": s, "k": k, "e": e, "se": 0.25, "se_in": True}
        for (c, n, s), k, e in zip(_EFF, cfg["kernels"], cfg["expansions"], strict=True)
    ]
    stem = make_divisible(32 * w)
    body, cin = _mb_stack(stem, stages, w, "swish")
    last = make_divisible(1280 * max(1.0, w))
    return nn.Sequential(
        conv_bn(3, stem, 3, 2, act="swish"), *body, conv_bn(cin, last, 1, act="swish"), Classifier(last, 1000)
    )


# ---- ShuffleNetV2 ---------------------------------------------------------------------------


class _ShuffleBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, k: int) -> None:
        super().__init__()
        half = cout // 2
        self.stride = stride
        self.left = (
            nn.Sequential(conv_bn(cin, cin, k, stride, groups=cin, act=None), conv_bn(cin, half, 1))
            if stride > 1
            else None
        )
        c2 = cin if stride > 1 else half
        self.right = nn.Sequential(
            conv_bn(c2, half, 1),
            conv_bn(half, half, k, stride, groups=half, act=None),
            conv_bn(half, half, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.left is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        c = out.shape[1]
        return out.unflatten(1, (2, c // 2)).transpose(1, 2).flatten(1, 2)


def sample_shufflenet(rng: random.Random) -> Config:
    return {
        "width": rng.choice(sorted(_SHUFFLE)),
        "repeats": [rng.randint(2, 4), rng.randint(3, 8), rng.randint(2, 4)],
        "kernel": rng.choice([3, 5]),
        "resolution": rng.choice(RESOLUTIONS),
    }


def build_shufflenet(cfg: Config) -> nn.Module:
    widths = _SHUFFLE[cfg["width"]]
    layers: list[nn.Module] = [conv_bn(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = widths[0]
    for stage, n in enumerate(cfg["repeats"]):
        for i in range(n):
            layers.append(_ShuffleBlock(cin, widths[stage + 1], 2 if i == 0 else 1, cfg["kernel"]))
            cin = widths[stage + 1]
    layers += [conv_bn(cin, widths[-1], 1), Classifier(widths[-1], 1000)]
    return nn.Sequential(*layers)


__all__ = [
    "build_efficientnet",
    "build_mnasnet",
    "build_mobilenetv2",
    "build_mobilenetv3",
    "build_shufflenet",
    "sample_efficientnet",
    "sample_mnasnet",
    "sample_mobilenetv2",
    "sample_mobilenetv3",
    "sample_shufflenet",
]
