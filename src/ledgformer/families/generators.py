"""Seeded random variants of known CNN families (like NNLQP's model generator), as torch modules and ONNX.

``generate(family, count, seed)`` draws ``count`` configurations (depth, width, kernel size,
expansion, input resolution, batch) and returns ``FamilyModel``s that build their module on
demand. Everything is deterministic given the seed: configurations come from
``random.Random(f"{family}:{seed}")`` and each module's weights are initialised under a seed
derived from its name, so the same call gives byte-identical ONNX files. Variants whose
conv + linear MACs (whole batch) exceed ``max_macs`` are redrawn, which keeps every variant quick
to time on a CPU.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import onnx
import torch
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.families import classic, mobile, nb201_torch
from ledgformer.graph.ir import ArchGraph

Config = dict[str, Any]
#: batch sizes drawn per variant (1 most of the time)
BATCHES = (1, 1, 1, 1, 2, 4)
DEFAULT_MAX_MACS = 1_000_000_000
_MAX_DRAWS = 50


@dataclass(frozen=True)
class Family:
    """One family: a config sampler, a module builder, and what it is."""

    sample: Callable[[random.Random], Config]
    build: Callable[[Config], nn.Module]
    description: str
    #: batch sizes drawn for it (NB201 networks are small: they also draw larger batches)
    batches: tuple[int, ...] = BATCHES


FAMILIES: MappingProxyType[str, Family] = MappingProxyType(
    {
        "resnet": Family(
            classic.sample_resnet,
            classic.build_resnet,
            "ResNet: basic/bottleneck blocks, 4 stages of 1-3 blocks, kernel 3/5",
        ),
        "vgg": Family(
            classic.sample_vgg, classic.build_vgg, "VGG: 5 stages of 1-3 convs, optional BN, 3 FC layers"
        ),
        "alexnet": Family(
            classic.sample_alexnet,
            classic.build_alexnet,
            "AlexNet: large strided stem, 3-5 convs, 3 FC layers, width 0.25-0.75",
        ),
        "squeezenet": Family(
            classic.sample_squeezenet,
            classic.build_squeezenet,
            "SqueezeNet 1.0/1.1: fire modules with drawn squeeze ratio and 3x3 share",
        ),
        "googlenet": Family(
            classic.sample_googlenet,
            classic.build_googlenet,
            "GoogLeNet: inception blocks (1-2, 2-5, 1-2 per stage), width 0.25-0.5",
        ),
        "densenet": Family(
            classic.sample_densenet,
            classic.build_densenet,
            "DenseNet: 4 dense blocks, growth 8-32, bottleneck 2/4, compression 0.5",
        ),
        "mobilenetv2": Family(
            mobile.sample_mobilenetv2,
            mobile.build_mobilenetv2,
            "MobileNetV2: inverted residuals, expansion 3/4/6, kernel 3/5/7, width 0.35-1",
        ),
        "mobilenetv3": Family(
            mobile.sample_mobilenetv3,
            mobile.build_mobilenetv3,
            "MobileNetV3-Large: hard-swish, SE with hard-sigmoid gate, kernel 3/5",
        ),
        "mnasnet": Family(
            mobile.sample_mnasnet,
            mobile.build_mnasnet,
            "MnasNet-A1: separable stem, MBConv3/6 with optional SE, ReLU",
        ),
        "efficientnet": Family(
            mobile.sample_efficientnet,
            mobile.build_efficientnet,
            "EfficientNet-B0 style: swish MBConv + SE, width/depth multipliers",
        ),
        "shufflenet": Family(
            mobile.sample_shufflenet,
            mobile.build_shufflenet,
            "ShuffleNetV2: channel split + shuffle, width 0.5/1.0/1.5, kernel 3/5",
        ),
        "nb201": Family(
            nb201_torch.sample_nb201,
            nb201_torch.build_nb201,
            "NAS-Bench-201 networks: random cell, CIFAR/ImageNet16 input sizes",
            batches=(1, 1, 2, 4, 8),
        ),
    }
)


@dataclass(frozen=True)
class FamilyModel:
    """One generated variant: its configuration, input shape, MACs and a module factory."""

    name: str
    family: str
    config: Config
    input_shape: tuple[int, ...]
    #: conv + linear multiply-accumulates of one forward pass of the whole batch
    macs: int
    #: builds the module (weights seeded from the name: same name, same weights)
    factory: Callable[[], nn.Module] = field(repr=False, compare=False)

    def build(self) -> nn.Module:
        return self.factory()

    def to_onnx(self) -> onnx.ModelProto:
        """The module exported to ONNX (eval mode, BatchNorm kept) at ``input_shape``, batch fixed."""
        from ledgformer.graph.torch_import import export_onnx

        proto = export_onnx(self.build(), self.input_shape)
        proto.graph.name = self.name
        for value in (*proto.graph.input, *proto.graph.output):  # the drawn batch, not a dynamic one
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_value = self.input_shape[0]
        return proto

    def graph(self, proto: onnx.ModelProto | None = None) -> ArchGraph:
        """The ArchGraph of the exported model (pass ``proto`` when already exported)."""
        from ledgformer.graph.onnx_import import load_onnx

        graph = load_onnx(proto or self.to_onnx(), input_shape=self.input_shape, name=self.name)
        graph.meta.update(source="families", family=self.family)
        return graph

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "config": self.config,
            "input_shape": list(self.input_shape),
            "macs": self.macs,
        }


def list_families() -> list[str]:
    return sorted(FAMILIES)


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise LedgformerError(
            f"unknown model family {name!r}; expected one of: {', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[name]


def _weight_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _seeded_build(build: Callable[[Config], nn.Module], config: Config, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(config).eval()


def count_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv + linear MACs of one forward pass of ``input_shape``, from the output shapes of a batch-1 run."""
    total = 0

    def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros((1, *input_shape[1:])))
    except RuntimeError as err:
        raise LedgformerError(
            f"{type(module).__name__}: the network does not fit input {tuple(input_shape)} "
            f"({str(err).splitlines()[0]})"
        ) from err
    finally:
        for h in handles:
            h.remove()
    return int(total) * int(input_shape[0])


def generate(
    family: str, count: int, seed: int = 0, *, max_macs: int = DEFAULT_MAX_MACS
) -> list[FamilyModel]:
    """``count`` seeded variants of ``family`` with at most ``max_macs`` MACs each (whole batch)."""
    fam = _family(family)
    if count < 0:
        raise LedgformerError(f"count must be >= 0, got {count}")
    rng = random.Random(f"{family}:{seed}")
    out: list[FamilyModel] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 shape runs: more threads only contend on a shared machine
    try:
        for index in range(count):
            out.append(_draw(family, fam, rng, seed, index, max_macs))
    finally:
        torch.set_num_threads(threads)
    return out


def _draw(family: str, fam: Family, rng: random.Random, seed: int, index: int, max_macs: int) -> FamilyModel:
    """The next variant under ``max_macs`` from ``rng`` (redraws the ones above it)."""
    for _ in range(_MAX_DRAWS):
        config = fam.sample(rng)
        batch = rng.choice(fam.batches)
        res = config["resolution"]
        shape = (batch, 3, res, res)
        macs = count_macs(_seeded_build(fam.build, config, 0), shape)
        if macs <= max_macs:
            name = f"{family}-s{seed}-{index:03d}"
            return FamilyModel(
                name, family, config, shape, macs, _Factory(fam.build, config, _weight_seed(name))
            )
    raise LedgformerError(
        f"family {family!r}: no variant under {max_macs:,} MACs in {_MAX_DRAWS} draws; raise max_macs"
    )


@dataclass(frozen=True)
class _Factory:
    """Picklable zero-argument module builder (a closure would not pickle)."""

    build: Callable[[Config], nn.Module]
    config: Config
    seed: int

    def __call__(self) -> nn.Module:
        return _seeded_build(self.build, self.config, self.seed)


__all__ = [
    "BATCHES",
    "DEFAULT_MAX_MACS",
    "FAMILIES",
    "Family",
    "FamilyModel",
    "count_macs",
    "generate",
    "list_families",
]
