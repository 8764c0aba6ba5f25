"""NAS search spaces as ArchGraphs: NAS-Bench-201/101 cells and networks, FBNet, OFA, MnasNet.

Each module builds whole networks with ``GraphBuilder`` (no PyTorch export), so a graph with
exact shapes and costs takes milliseconds. The mobile spaces share ``mbconv`` below.
"""

from __future__ import annotations

from ledgformer.graph.builder import GraphBuilder, T


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` (never below 90% of ``v``), as MobileNet code does."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn_act(
    b: GraphBuilder, x: T, c_out: int, kernel: int, stride: int = 1, act: str | None = "relu",
    groups: int = 1, name: str = "",
) -> T:
    """Conv (no bias) -> BN -> optional activation."""
    x = b.conv(x, c_out, kernel, stride=stride, groups=groups, name=f"{name}.conv")
    x = b.batchnorm(x, name=f"{name}.bn")
    return b.act(x, act, name=f"{name}.act") if act else x


def channel_shuffle(b: GraphBuilder, x: T, groups: int, name: str) -> T:
    """ShuffleNet channel shuffle as exported: reshape -> transpose -> reshape."""
    n, c, h, w = x.shape
    y = b.add("reshape", [x], (n, groups, c // groups, h, w), name=f"{name}.reshape0")
    y = b.add("transpose", [y], (n, c // groups, groups, h, w), name=f"{name}.transpose",
              perm=(0, 2, 1, 3, 4), raw_op="channel_shuffle")
    return b.add("reshape", [y], (n, c, h, w), name=f"{name}.reshape1")


def mbconv(
    b: GraphBuilder, x: T, c_out: int, kernel: int, stride: int, mid: int, *, act: str,
    expand: bool, se_mid: int = 0, se_act: str = "relu", se_gate: str = "sigmoid", groups: int = 1,
    name: str,
) -> T:
    """Inverted residual: [1x1 expand-BN-act] -> dw kxk-BN-act -> [SE] -> 1x1 project-BN (+ skip).

    ``groups`` > 1 makes both 1x1 convs grouped with a channel shuffle after the expansion
    (FBNet's ``_g2`` blocks); the skip is added when stride is 1 and channels are kept.
    """
    y = x
    if expand:
        y = conv_bn_act(b, y, mid, 1, act=act, groups=groups, name=f"{name}.expand")
        if groups > 1:
            y = channel_shuffle(b, y, groups, f"{name}.shuffle")
    y = conv_bn_act(b, y, mid, kernel, stride, act=act, groups=mid, name=f"{name}.dw")
    if se_mid:
        y = b.squeeze_excite(y, se_mid, se_act, se_gate, name=f"{name}.se")
    y = conv_bn_act(b, y, c_out, 1, act=None, groups=groups, name=f"{name}.project")
    if stride == 1 and x.shape[1] == c_out:
        y = b.eltwise([y, x], "add", name=f"{name}.add")
    return y


__all__ = ["channel_shuffle", "conv_bn_act", "make_divisible", "mbconv"]
