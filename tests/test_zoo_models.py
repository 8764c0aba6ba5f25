"""Whole published models through export + import: zero unknown ops, exact params, MACs near papers.

Each model is built and exported once per session (``zoo`` fixture) and reused by every test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.graph.onnx_import import load_onnx
from ledgformer.graph.torch_import import export_onnx
from ledgformer.graph.zoo import build_module, load_model

# Published multiply-accumulate counts (G), 224x224, batch 1:
# - ResNet-18 1.82, ResNet-50 (v1.5, stride in the 3x3 conv = pytorchcv resnet50b / torchvision)
#   4.1, MobileNetV2 0.30, GoogLeNet 1.5, SqueezeNet 1.1 0.35: torchvision model tables
#   (pytorch.org/vision/stable/models.html, "GFLOPS" column).
# - ResNet-50 v1 (stride in the 1x1 conv = pytorchcv resnet50) 3.88 and DenseNet-121 2.87: the
#   pytorchcv/imgclsmob table (github.com/nerox8664/awesome-computer-vision-models README:
#   "3,877.95M", "2,872.13M"); He et al. 2016, Table 1, gives 3.8e9 for ResNet-50.
# - MobileNetV3-Large 0.22 (Howard et al. 2019, Table 3: 219M MAdds), EfficientNet-B0 0.39
#   (Tan & Le 2019, Table 2: 0.39B FLOPs), ViT-Ti/16 = DeiT-Ti 1.26 (Touvron et al. 2021 / timm).
PUBLISHED_GMACS: dict[str, float] = {
    "pytorchcv:resnet18": 1.82,
    "pytorchcv:resnet50": 3.88,
    "pytorchcv:resnet50b": 4.1,
    "pytorchcv:mobilenetv2b_w1": 0.30,
    "pytorchcv:mobilenetv3_large_w1": 0.22,
    "pytorchcv:squeezenet_v1_1": 0.35,
    "torchvision:googlenet": 1.5,
    "pytorchcv:efficientnet_b0": 0.39,
    "pytorchcv:densenet121": 2.87,
    "timm:vit_tiny_patch16_224": 1.26,
}


@pytest.fixture(scope="session")
def zoo() -> Callable[[str], dict[str, Any]]:
    """spec -> {graph, model (ModelProto), shape, torch_params}; built once per session."""
    torch.set_num_threads(1)
    built: dict[str, dict[str, Any]] = {}

    def get(spec: str) -> dict[str, Any]:
        if spec not in built:
            module, shape = build_module(spec)
            model = export_onnx(module, shape)
            built[spec] = {
                "graph": load_onnx(model, input_shape=shape, name=spec), "model": model, "shape": shape,
                "torch_params": sum(p.numel() for p in module.parameters()),
            }
        return built[spec]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(PUBLISHED_GMACS))
def test_published_model(zoo, spec):
    entry = zoo(spec)
    g: ArchGraph = entry["graph"]
    assert g.unknown_ops() == {}
    assert g.params == entry["torch_params"]
    published = PUBLISHED_GMACS[spec]
    assert abs(g.macs / 1e9 - published) <= 0.03 * published, f"{spec}: {g.macs / 1e9:.4f} G"
    assert all(n.output_shapes for n in g.nodes)


@pytest.mark.slow
def test_resnet18_batch8_is_8x(zoo):
    entry = zoo("pytorchcv:resnet18")
    g8 = load_onnx(entry["model"], input_shape=entry["shape"], batch_size=8)
    assert g8.macs == 8 * entry["graph"].macs and g8.params == entry["graph"].params


@pytest.mark.slow
def test_same_model_exported_twice_has_same_hash(zoo):
    entry = zoo("pytorchcv:mobilenetv3_large_w1")
    module, shape = build_module("pytorchcv:mobilenetv3_large_w1")
    again = load_onnx(export_onnx(module, shape), input_shape=shape)
    assert again.content_hash() == entry["graph"].content_hash()
    assert entry["graph"].content_hash() != zoo("pytorchcv:resnet18")["graph"].content_hash()


@pytest.mark.slow
def test_vit_transformer_ops(zoo):
    counts = zoo("timm:vit_tiny_patch16_224")["graph"].op_counts()
    assert counts["layernorm"] == 25 and counts["gelu"] == 12 and counts["softmax"] == 12
    assert counts["matmul"] == 24  # q @ k^T and attn @ v in 12 blocks
    assert counts["gemm"] == 12 * 4 + 1  # qkv, proj, fc1, fc2 per block + head


def test_load_model_caches_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path))
    first = load_model("pytorchcv:squeezenet_v1_1", batch_size=2)
    assert list((tmp_path / "graphs").glob("*.json"))
    start = time.perf_counter()
    second = load_model("pytorchcv:squeezenet_v1_1", batch_size=2)
    assert time.perf_counter() - start < 0.5
    assert second.content_hash() == first.content_hash()
    assert second.meta["input_shape"] == (2, 3, 224, 224)
    assert second.meta["source"] == "pytorchcv:squeezenet_v1_1"


@pytest.mark.parametrize("spec, hint", [
    ("pytorchcv:not_a_model", "pytorchcv.model_provider"),
    ("timm:not_a_model", "timm.list_models"),
    ("resnet18", "pytorchcv:NAME"),
])
def test_unknown_names_say_how_to_list(spec, hint, tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path))
    with pytest.raises(LedgformerError, match=spec.split(":")[-1]) as err:
        load_model(spec)
    assert hint in str(err.value)
