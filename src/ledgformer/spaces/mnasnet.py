"""Accel-NASBench's MnasNet/EfficientNet-B0 space (``accel_nasbench/anb_dataset_jsons.tar.gz``).

Each JSON's ``architecture`` is ``{"block{i}_e": 1|4|6, "block{i}_k": 3|5, "block{i}_l": layers,
"block{i}_se": bool}`` for 7 blocks; ``model_info`` holds ``macs`` and ``params`` in millions.
The network is ANB-DatasetCollection's ``AccelNASBenchNet`` (torchvision EfficientNet code):
stem conv3x3/2 (32) + BN + act; 7 stages of MBConv with EfficientNet-B0's strides
1, 2, 2, 2, 1, 2, 1 and channels 16, 24, 40, 80, 112, 192, 320 (the first layer of a stage has
the stride and changes channels); expansion conv only when the expanded width differs; SE with
``max(1, in_channels // 4)`` squeeze channels and the block activation / sigmoid; head 1x1 conv
to 1280 + BN + act, global pool, linear. Activation: SiLU on GPU/TPU, ReLU on the FPGAs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.spaces import conv_bn_act, make_divisible, mbconv

NUM_BLOCKS = 7
STRIDES: tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
IN_CHANNELS: tuple[int, ...] = (32, 16, 24, 40, 80, 112, 192)
OUT_CHANNELS: tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)
HEAD_CHANNELS = 4 * OUT_CHANNELS[-1]
ACTIVATIONS: dict[str, str] = {"gpu": "swish", "fpga": "relu"}


def parse_config(config: Mapping[str, Any]) -> list[tuple[int, int, int, bool]]:
    """``architecture`` dict (or a whole result JSON) -> [(expansion, kernel, layers, se)] x 7."""
    arch = config.get("architecture", config)
    blocks = []
    for i in range(NUM_BLOCKS):
        try:
            e, k, n, se = arch[f"block{i}_e"], arch[f"block{i}_k"], arch[f"block{i}_l"], arch[f"block{i}_se"]
        except KeyError as exc:
            raise LedgformerError(f"Accel-NASBench arch: missing field {exc} (block{i}_e/_k/_l/_se)") from exc
        if int(e) < 1 or int(k) not in (3, 5, 7) or int(n) < 1:
            raise LedgformerError(f"Accel-NASBench arch block{i}: e >= 1, k in 3/5/7, l >= 1 expected")
        blocks.append((int(e), int(k), int(n), bool(se)))
    return blocks


def network_graph(
    config: Mapping[str, Any], *, batch_size: int = 1, input_size: int = 224, platform: str = "gpu",
    num_classes: int = 1000,
) -> ArchGraph:
    """The Accel-NASBench network of ``config`` (the JSON's ``architecture`` or the whole JSON)."""
    blocks = parse_config(config)
    if platform not in ACTIVATIONS:
        raise LedgformerError(f"Accel-NASBench platform '{platform}': expected one of {sorted(ACTIVATIONS)}")
    act = ACTIVATIONS[platform]
    name = "_".join(f"e{e}k{k}l{n}{'s' if se else ''}" for e, k, n, se in blocks)
    b = GraphBuilder(source="accel_nasbench", kind="network", name=name, platform=platform)
    x = b.input((batch_size, 3, input_size, input_size))
    x = conv_bn_act(b, x, IN_CHANNELS[0], 3, 2, act=act, name="stem")
    for i, (e, k, n, se) in enumerate(blocks):
        for j in range(n):
            c_in = x.shape[1]
            mid = make_divisible(c_in * e)
            x = mbconv(b, x, OUT_CHANNELS[i], k, STRIDES[i] if j == 0 else 1, mid, act=act,
                       expand=mid != c_in, se_mid=max(1, c_in // 4) if se else 0, se_act=act,
                       se_gate="sigmoid", name=f"stage{i}.block{j}")
    x = conv_bn_act(b, x, HEAD_CHANNELS, 1, act=act, name="head")
    x = b.global_pool(x, name="pool")
    x = b.flatten(x, name="flatten")
    b.linear(x, num_classes, name="classifier")
    return b.build()


__all__ = ["ACTIVATIONS", "IN_CHANNELS", "NUM_BLOCKS", "OUT_CHANNELS", "STRIDES", "network_graph",
           "parse_config"]
