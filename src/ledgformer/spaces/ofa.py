"""Once-for-All MobileNetV3 subnets (the OFA space of HELP, ``help/ofa/ofa_archs.pt``).

HELP's file holds ``{"dataset": "imagenet", "num_classes": 1000, "arch": [...]}`` with 5,000
configs ``{"ks": [20 kernels in 3/5/7], "e": [20 expand ratios in 3/4/6], "d": [5 depths in
2/3/4], "r": resolution 128..224}``; HELP evaluates them on ``ofa_mbv3_d234_e346_k357_w1.2``
(its ``validate_imagenet.py``), so the default width multiplier is 1.2.

The subnet follows OFA's ``OFAMobileNetV3.get_active_subnet``: stem conv3x3/2 + BN + h-swish,
a first MBConv (e1, k3, ReLU, residual), 5 stages of 4 searchable blocks of which the first
``d[s]`` are kept (block ``4*s + j`` uses ``ks``/``e`` entry ``4*s + j``), a final 1x1
expansion (BN, h-swish), global pool, a 1x1 feature-mix conv (no BN, h-swish) and the
classifier. Stages: strides 2, 2, 2, 1, 2; acts ReLU, ReLU, h-swish, h-swish, h-swish; SE
(reduction 4, ReLU / h-sigmoid) in stages 2, 4, 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.spaces import conv_bn_act, make_divisible, mbconv

BASE_STAGE_WIDTH: tuple[int, ...] = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2)
STAGE_ACTS: tuple[str, ...] = ("relu", "relu", "hardswish", "hardswish", "hardswish")
STAGE_SE: tuple[bool, ...] = (False, True, False, True, True)
MAX_DEPTH = 4
KERNELS, EXPANDS, DEPTHS = (3, 5, 7), (3, 4, 6), (2, 3, 4)


def _check(config: Mapping[str, Any]) -> tuple[list[int], list[int], list[int], int]:
    try:
        ks, e, d, r = [int(v) for v in config["ks"]], [int(v) for v in config["e"]], \
            [int(v) for v in config["d"]], int(config["r"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgformerError(f"OFA config: needs ks, e, d lists and resolution r ({exc})") from exc
    n = MAX_DEPTH * len(STAGE_STRIDES)
    if len(ks) != n or len(e) != n or len(d) != len(STAGE_STRIDES):
        raise LedgformerError(f"OFA config: expected {n} ks, {n} e and {len(STAGE_STRIDES)} d values")
    if any(k not in KERNELS for k in ks) or any(x not in EXPANDS for x in e) \
            or any(x not in DEPTHS for x in d) or r < 32:
        raise LedgformerError(f"OFA config: ks in {KERNELS}, e in {EXPANDS}, d in {DEPTHS}, r >= 32 expected")
    return ks, e, d, r


def network_graph(
    config: Mapping[str, Any], *, batch_size: int = 1, width_mult: float = 1.2, num_classes: int = 1000,
) -> ArchGraph:
    """The OFA MobileNetV3 subnet of ``config`` (keys ks, e, d, r) at resolution ``r``."""
    ks, e, d, r = _check(config)
    widths = [make_divisible(w * width_mult) for w in BASE_STAGE_WIDTH[:-2]]
    final_expand = make_divisible(BASE_STAGE_WIDTH[-2] * width_mult)
    last = make_divisible(BASE_STAGE_WIDTH[-1] * width_mult)
    name = f"ks{''.join(map(str, ks))}-e{''.join(map(str, e))}-d{''.join(map(str, d))}-r{r}"
    b = GraphBuilder(source="ofa", kind="network", name=name, width_mult=width_mult)
    x = b.input((batch_size, 3, r, r))
    x = conv_bn_act(b, x, widths[0], 3, 2, act="hardswish", name="first_conv")
    x = mbconv(b, x, widths[1], 3, 1, x.shape[1], act="relu", expand=False, name="first_block")
    for s, c_out in enumerate(widths[2:]):
        for j in range(d[s]):
            i = MAX_DEPTH * s + j
            mid = make_divisible(round(x.shape[1] * e[i]))
            se_mid = make_divisible(mid // 4) if STAGE_SE[s] else 0
            x = mbconv(b, x, c_out, ks[i], STAGE_STRIDES[s] if j == 0 else 1, mid, act=STAGE_ACTS[s],
                       expand=True, se_mid=se_mid, se_act="relu", se_gate="hardsigmoid",
                       name=f"blocks{i}")
    x = conv_bn_act(b, x, final_expand, 1, act="hardswish", name="final_expand")
    x = b.global_pool(x, name="pool")
    x = b.conv(x, last, 1, name="feature_mix.conv")
    x = b.act(x, "hardswish", name="feature_mix.act")
    x = b.flatten(x, name="flatten")
    b.linear(x, num_classes, name="classifier")
    return b.build()


__all__ = ["BASE_STAGE_WIDTH", "DEPTHS", "EXPANDS", "KERNELS", "network_graph"]
