"""The FBNet space of HW-NAS-Bench, as HELP measured it (``help/fbnet``).

HELP's ``fbnet/metainfo.pt`` holds ``{"dataset": "cifar100", "num_classes": 100, "arch": [...]}``
where each arch is ``{"op_idx_list": [22 ints], "arch_str": [22 block names]}`` and
``fbnet/arch.pt`` is the list of those 22-index lists; index i names ``LAYER_CHOICES[i]``.
The network is HW-NAS-Bench's ``FBNet_Infer``: stem conv3x3 (16) -> 22 searchable layers
(stages of 1, 4, 4, 4, 4, 4, 1 layers with 16, 24, 32, 64, 112, 184, 352 channels) -> 1x1 conv
header -> global pool -> linear. Blocks ``k{3,5}_e{1,3,6}[_g2]`` are 1x1 (grouped) expansion ->
[channel shuffle] -> depthwise kxk -> 1x1 (grouped) projection, all with BN and ReLU except
after the projection, with a residual when shapes allow; ``skip`` is an identity, or a
1x1 conv-BN-ReLU when the layer changes stride or channels. CIFAR settings (HELP's data):
stem stride 1, stage strides 1, 1, 2, 2, 1, 2, 1, header 1504; ImageNet: stem stride 2,
strides 1, 2, 2, 2, 1, 2, 1, header 1984.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledgformer.errors import LedgformerError
from ledgformer.graph.builder import GraphBuilder
from ledgformer.graph.ir import ArchGraph
from ledgformer.spaces import conv_bn_act, mbconv

#: the 9 block choices, in the index order of HELP's op_idx_list / HW-NAS-Bench's PRIMITIVES
LAYER_CHOICES: tuple[str, ...] = (
    "k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip",
)
NUM_LAYERS = 22
STAGE_LAYERS: tuple[int, ...] = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS: tuple[int, ...] = (16, 24, 32, 64, 112, 184, 352)
STEM_CHANNELS = 16
#: dataset -> (stem stride, stage strides, header channels, input size, classes)
SETTINGS: dict[str, tuple[int, tuple[int, ...], int, int, int]] = {
    "cifar100": (1, (1, 1, 2, 2, 1, 2, 1), 1504, 32, 100),
    "cifar10": (1, (1, 1, 2, 2, 1, 2, 1), 1504, 32, 10),
    "imagenet": (2, (1, 2, 2, 2, 1, 2, 1), 1984, 224, 1000),
}


def parse_block(name: str) -> tuple[int, int, int]:
    """``'k5_e1_g2'`` -> (kernel 5, expansion 1, groups 2); raises on an unknown block."""
    if name not in LAYER_CHOICES or name == "skip":
        raise LedgformerError(f"FBNet block '{name}': expected one of {LAYER_CHOICES}")
    parts = name.split("_")
    return int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]) if len(parts) > 2 else 1


def _op_names(ops: Sequence[int | str]) -> list[str]:
    if len(ops) != NUM_LAYERS:
        raise LedgformerError(f"FBNet arch: expected {NUM_LAYERS} layer choices, got {len(ops)}")
    names = []
    for i, op in enumerate(ops):
        if isinstance(op, str):
            if op not in LAYER_CHOICES:
                raise LedgformerError(f"FBNet arch layer {i}: '{op}' is not one of {LAYER_CHOICES}")
            names.append(op)
        elif 0 <= int(op) < len(LAYER_CHOICES):
            names.append(LAYER_CHOICES[int(op)])
        else:
            raise LedgformerError(f"FBNet arch layer {i}: index {op} is outside 0..{len(LAYER_CHOICES) - 1}")
    return names


def network_graph(
    ops: Sequence[int | str], *, input_size: int | None = None, batch_size: int = 1,
    dataset: str = "cifar100",
) -> ArchGraph:
    """The FBNet network of 22 layer choices (indices into LAYER_CHOICES or their names)."""
    names = _op_names(ops)
    if dataset not in SETTINGS:
        raise LedgformerError(f"FBNet dataset '{dataset}': expected one of {sorted(SETTINGS)}")
    stem_stride, strides, header, default_size, classes = SETTINGS[dataset]
    size = default_size if input_size is None else input_size
    b = GraphBuilder(source="fbnet", kind="network", name="-".join(names), dataset=dataset)
    x = b.input((batch_size, 3, size, size))
    x = conv_bn_act(b, x, STEM_CHANNELS, 3, stem_stride, name="stem")
    layer = 0
    for stage, (n_layers, c_out) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS, strict=True)):
        for i in range(n_layers):
            stride = strides[stage] if i == 0 else 1
            op, name = names[layer], f"layer{layer}"
            if op == "skip":
                if stride != 1 or x.shape[1] != c_out:
                    x = conv_bn_act(b, x, c_out, 1, stride, name=f"{name}.skip")
            else:
                k, e, g = parse_block(op)
                x = mbconv(b, x, c_out, k, stride, x.shape[1] * e, act="relu", expand=True, groups=g,
                           name=name)
            layer += 1
    x = conv_bn_act(b, x, header, 1, name="header")
    x = b.global_pool(x, name="head.pool")
    x = b.flatten(x, name="head.flatten")
    b.linear(x, classes, name="head.fc")
    return b.build()


__all__ = ["LAYER_CHOICES", "NUM_LAYERS", "SETTINGS", "STAGE_CHANNELS", "STAGE_LAYERS", "network_graph",
           "parse_block"]
