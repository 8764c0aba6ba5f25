"""The Hugging Face ViTs of mobile-ml-benchmark, written out as configs (there is no hub access).

The benchmark names each ViT by the last part of its hub id (``cvt-13`` = ``microsoft/cvt-13``).
``VITS`` maps that name to the ``transformers`` config class and the fields of the published
``config.json`` that differ from the class defaults (sizes, depths, heads, image and patch size,
label count); ``build_vit`` instantiates it with random weights through
``AutoModelForImageClassification.from_config``, exports it to ONNX (TorchScript exporter) and
parses it at the config's image size, batch 1 (DINOv2: 224, its processor's crop; the config's
518 is the pre-training size and the benchmark's FLOPS match 224). Each parsed graph is cached on
disk by its spec and library versions. Models whose config class is gone from ``transformers`` 5
(EfficientFormer, VAN, ViT-hybrid were removed upstream) are listed with that reason and fail to
build.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ledgformer.cache import cache_dir
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import IR_VERSION, ArchGraph


@dataclass(frozen=True)
class ViTSpec:
    """A hub model as (config class, non-default config fields); ``removed`` says why it cannot be built."""

    hub_id: str
    config: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    removed: str = ""
    #: the measured input side when it differs from the config's ``image_size`` (0: the same)
    input_size: int = 0

    @property
    def image_size(self) -> int:
        return self.input_size or int(self.kwargs.get("image_size", 224))


_IN1K = {"num_labels": 1000}
_SWIN_B = {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]}
_DEIT_S = {"hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536}
#: the class named by the published config.json (what AutoModelForImageClassification then builds)
_DEIT = {"architectures": ["DeiTForImageClassificationWithTeacher"], **_IN1K}
_BEIT = {"use_relative_position_bias": True, "use_mean_pooling": True, "layer_scale_init_value": 0.1,
         **_IN1K}
_MIT_WIDE = [64, 128, 320, 512]
_GONE = "config class removed from transformers 5.x (deprecated model); cannot be built offline"


def _mit(hidden: list[int], depths: list[int]) -> dict[str, Any]:
    return {"hidden_sizes": hidden, "depths": depths, "num_attention_heads": [1, 2, 5, 8], **_IN1K}


def _levit(hidden: list[int], heads: list[int], depths: list[int], key_dim: int) -> dict[str, Any]:
    return {"hidden_sizes": hidden, "num_attention_heads": heads, "depths": depths,
            "key_dim": [key_dim] * 3, "architectures": ["LevitForImageClassificationWithTeacher"], **_IN1K}


def _poolformer(hidden: list[int], depths: list[int], scale: float) -> dict[str, Any]:
    return {"hidden_sizes": hidden, "depths": depths, "layer_scale_init_value": scale, **_IN1K}


VITS: dict[str, ViTSpec] = {
    "beit-base-patch16-224": ViTSpec("microsoft/beit-base-patch16-224", "BeitConfig", _BEIT),
    "beit-base-patch16-384": ViTSpec("microsoft/beit-base-patch16-384", "BeitConfig",
                                     {**_BEIT, "image_size": 384}),
    "cvt-13": ViTSpec("microsoft/cvt-13", "CvtConfig", _IN1K),
    "cvt-13-384": ViTSpec("microsoft/cvt-13-384", "CvtConfig", {**_IN1K, "image_size": 384}),
    "cvt-21": ViTSpec("microsoft/cvt-21", "CvtConfig", {"depth": [1, 4, 16], **_IN1K}),
    "cvt-21-384": ViTSpec("microsoft/cvt-21-384", "CvtConfig",
                          {"depth": [1, 4, 16], **_IN1K, "image_size": 384}),
    "deit-base-distilled-patch16-224": ViTSpec("facebook/deit-base-distilled-patch16-224", "DeiTConfig",
                                               _DEIT),
    "deit-base-distilled-patch16-384": ViTSpec("facebook/deit-base-distilled-patch16-384", "DeiTConfig",
                                               {**_DEIT, "image_size": 384}),
    "deit-small-distilled-patch16-224": ViTSpec("facebook/deit-small-distilled-patch16-224", "DeiTConfig",
                                                {**_DEIT_S, **_DEIT}),
    "deit-tiny-distilled-patch16-224": ViTSpec("facebook/deit-tiny-distilled-patch16-224", "DeiTConfig",
                                               {"hidden_size": 192, "num_attention_heads": 3,
                                                "intermediate_size": 768, **_DEIT}),
    "dinov2-base-imagenet1k-1-layer": ViTSpec("facebook/dinov2-base-imagenet1k-1-layer", "Dinov2Config",
                                              {"image_size": 518, "patch_size": 14, **_IN1K}, input_size=224),
    "dinov2-small-imagenet1k-1-layer": ViTSpec("facebook/dinov2-small-imagenet1k-1-layer", "Dinov2Config",
                                               {"hidden_size": 384, "num_attention_heads": 6,
                                                "image_size": 518, "patch_size": 14, **_IN1K},
                                               input_size=224),
    **{f"efficientformer-{v}-300": ViTSpec(f"snap-research/efficientformer-{v}-300",
                                           "EfficientFormerConfig", removed=_GONE)
       for v in ("l1", "l3", "l7")},
    "focalnet-tiny": ViTSpec("microsoft/focalnet-tiny", "FocalNetConfig", _IN1K),
    "focalnet-small": ViTSpec("microsoft/focalnet-small", "FocalNetConfig",
                              {"depths": [2, 2, 18, 2], **_IN1K}),
    "focalnet-base": ViTSpec("microsoft/focalnet-base", "FocalNetConfig",
                             {"embed_dim": 128, "depths": [2, 2, 18, 2], **_IN1K}),
    "levit-128S": ViTSpec("facebook/levit-128S", "LevitConfig",
                          _levit([128, 256, 384], [4, 6, 8], [2, 3, 4], 16)),
    "levit-128": ViTSpec("facebook/levit-128", "LevitConfig",
                          _levit([128, 256, 384], [4, 8, 12], [4, 4, 4], 16)),
    "levit-192": ViTSpec("facebook/levit-192", "LevitConfig",
                          _levit([192, 288, 384], [3, 5, 6], [4, 4, 4], 32)),
    "levit-256": ViTSpec("facebook/levit-256", "LevitConfig",
                          _levit([256, 384, 512], [4, 6, 8], [4, 4, 4], 32)),
    "levit-384": ViTSpec("facebook/levit-384", "LevitConfig",
                          _levit([384, 512, 768], [6, 9, 12], [4, 4, 4], 32)),
    "mit-b0": ViTSpec("nvidia/mit-b0", "SegformerConfig", _mit([32, 64, 160, 256], [2, 2, 2, 2])),
    "mit-b1": ViTSpec("nvidia/mit-b1", "SegformerConfig", _mit(_MIT_WIDE, [2, 2, 2, 2])),
    "mit-b2": ViTSpec("nvidia/mit-b2", "SegformerConfig", _mit(_MIT_WIDE, [3, 4, 6, 3])),
    "mit-b3": ViTSpec("nvidia/mit-b3", "SegformerConfig", _mit(_MIT_WIDE, [3, 4, 18, 3])),
    "mit-b4": ViTSpec("nvidia/mit-b4", "SegformerConfig", _mit(_MIT_WIDE, [3, 8, 27, 3])),
    "mit-b5": ViTSpec("nvidia/mit-b5", "SegformerConfig", _mit(_MIT_WIDE, [3, 6, 40, 3])),
    "mobilevit-small": ViTSpec("apple/mobilevit-small", "MobileViTConfig", {"image_size": 256, **_IN1K}),
    "mobilevit-x-small": ViTSpec("apple/mobilevit-x-small", "MobileViTConfig",
                                 {"image_size": 256, "hidden_sizes": [96, 120, 144],
                                  "neck_hidden_sizes": [16, 32, 48, 64, 80, 96, 384], **_IN1K}),
    "mobilevit-xx-small": ViTSpec("apple/mobilevit-xx-small", "MobileViTConfig",
                                  {"image_size": 256, "hidden_sizes": [64, 80, 96], "expand_ratio": 2.0,
                                   "neck_hidden_sizes": [16, 16, 24, 48, 64, 80, 320], **_IN1K}),
    "mobilevitv2-1.0-imagenet1k-256": ViTSpec("apple/mobilevitv2-1.0-imagenet1k-256", "MobileViTV2Config",
                                              {"image_size": 256, "width_multiplier": 1.0, **_IN1K}),
    # measured as an image classifier (the CSV's size / 4 bytes equals this classifier's parameter
    # count, not the larger DeepLabv3 model's) at 256 x 256: its latency lies between widths 1.0
    # and 2.0 at 256 on every phone, where 512 (4x its MACs at 256) would put it at 2.3x the MACs
    # of width 2.0 (`python benchmarks/mobile_parse.py --kind transformer` prints both)
    "mobilevitv2-1.5-voc-deeplabv3": ViTSpec("apple/mobilevitv2-1.5-voc-deeplabv3", "MobileViTV2Config",
                                             {"image_size": 512, "width_multiplier": 1.5, "num_labels": 21},
                                             input_size=256),
    "mobilevitv2-2.0-imagenet1k-256": ViTSpec("apple/mobilevitv2-2.0-imagenet1k-256", "MobileViTV2Config",
                                              {"image_size": 256, "width_multiplier": 2.0, **_IN1K}),
    "poolformer_s12": ViTSpec("sail/poolformer_s12", "PoolFormerConfig",
                              _poolformer(_MIT_WIDE, [2, 2, 6, 2], 1e-5)),
    "poolformer_s24": ViTSpec("sail/poolformer_s24", "PoolFormerConfig",
                              _poolformer(_MIT_WIDE, [4, 4, 12, 4], 1e-5)),
    "poolformer_s36": ViTSpec("sail/poolformer_s36", "PoolFormerConfig",
                              _poolformer(_MIT_WIDE, [6, 6, 18, 6], 1e-6)),
    "poolformer_m36": ViTSpec("sail/poolformer_m36", "PoolFormerConfig",
                              _poolformer([96, 192, 384, 768], [6, 6, 18, 6], 1e-6)),
    "poolformer_m48": ViTSpec("sail/poolformer_m48", "PoolFormerConfig",
                              _poolformer([96, 192, 384, 768], [8, 8, 24, 8], 1e-6)),
    **{f"pvt-{size}-224": ViTSpec(f"Zetatech/pvt-{size}-224", "PvtConfig", {"depths": depths, **_IN1K})
       for size, depths in (("tiny", [2, 2, 2, 2]), ("small", [3, 4, 6, 3]), ("medium", [3, 4, 18, 3]),
                            ("large", [3, 8, 27, 3]))},
    **{f"swiftformer-{size}": ViTSpec(f"MBZUAI/swiftformer-{size}", "SwiftFormerConfig",
                                      {"depths": depths, "embed_dims": dims, **_IN1K})
       for size, depths, dims in (("xs", [3, 3, 6, 4], [48, 56, 112, 220]),
                                  ("s", [3, 3, 9, 6], [48, 64, 168, 224]),
                                  ("l1", [4, 3, 10, 5], [48, 96, 192, 384]),
                                  ("l3", [4, 4, 12, 6], [64, 128, 320, 512]))},
    "swin-tiny-patch4-window7-224": ViTSpec("microsoft/swin-tiny-patch4-window7-224", "SwinConfig", _IN1K),
    "swin-small-patch4-window7-224": ViTSpec("microsoft/swin-small-patch4-window7-224", "SwinConfig",
                                             {"depths": [2, 2, 18, 2], **_IN1K}),
    "swin-base-patch4-window7-224": ViTSpec("microsoft/swin-base-patch4-window7-224", "SwinConfig",
                                            {**_SWIN_B, **_IN1K}),
    "swin-base-patch4-window12-384": ViTSpec("microsoft/swin-base-patch4-window12-384", "SwinConfig",
                                             {**_SWIN_B, "window_size": 12, "image_size": 384, **_IN1K}),
    "swinv2-tiny-patch4-window8-256": ViTSpec("microsoft/swinv2-tiny-patch4-window8-256", "Swinv2Config",
                                              {"image_size": 256, "window_size": 8, **_IN1K}),
    "swinv2-tiny-patch4-window16-256": ViTSpec("microsoft/swinv2-tiny-patch4-window16-256", "Swinv2Config",
                                               {"image_size": 256, "window_size": 16, **_IN1K}),
    "swinv2-base-patch4-window8-256": ViTSpec("microsoft/swinv2-base-patch4-window8-256", "Swinv2Config",
                                              {**_SWIN_B, "image_size": 256, "window_size": 8, **_IN1K}),
    "swinv2-base-patch4-window16-256": ViTSpec("microsoft/swinv2-base-patch4-window16-256", "Swinv2Config",
                                               {**_SWIN_B, "image_size": 256, "window_size": 16, **_IN1K}),
    "swinv2-base-patch4-window12-192-22k": ViTSpec("microsoft/swinv2-base-patch4-window12-192-22k",
                                                   "Swinv2Config", {**_SWIN_B, "image_size": 192,
                                                                    "window_size": 12, "num_labels": 21841}),
    **{f"van-{size}": ViTSpec(f"Visual-Attention-Network/van-{size}", "VanConfig", removed=_GONE)
       for size in ("tiny", "small", "base", "large")},
    # the in21k checkpoints publish no label map: AutoModelForImageClassification gives 2 labels
    "vit-base-patch16-224-in21k": ViTSpec("google/vit-base-patch16-224-in21k", "ViTConfig", {}),
    "vit-base-patch16-384": ViTSpec("google/vit-base-patch16-384", "ViTConfig", {"image_size": 384, **_IN1K}),
    "vit-base-patch32-224-in21k": ViTSpec("google/vit-base-patch32-224-in21k", "ViTConfig",
                                          {"patch_size": 32}),
    "vit-base-patch32-384": ViTSpec("google/vit-base-patch32-384", "ViTConfig",
                                    {"patch_size": 32, "image_size": 384, **_IN1K}),
    "vit-hybrid-base-bit-384": ViTSpec("google/vit-hybrid-base-bit-384", "ViTHybridConfig", removed=_GONE),
    "vit-msn-base": ViTSpec("facebook/vit-msn-base", "ViTMSNConfig", {}),
    "vit-msn-base-4": ViTSpec("facebook/vit-msn-base-4", "ViTMSNConfig", {"patch_size": 4}),
    "vit-msn-small": ViTSpec("facebook/vit-msn-small", "ViTMSNConfig", _DEIT_S),
}


def unfold_patches(x: Any, ph: int, pw: int) -> Any:
    """``F.unfold(x, (ph, pw), stride=(ph, pw))`` (non-overlapping patches) as reshape + permute."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * ph * pw, (h // ph) * (w // pw))


def fold_patches(p: Any, size: tuple[int, int], ph: int, pw: int) -> Any:
    """``F.fold`` inverse of ``unfold_patches`` (non-overlapping, so no sums) as reshape + permute."""
    b, cpp, _ = p.shape
    h, w = size
    p = p.reshape(b, cpp // (ph * pw), ph, pw, h // ph, w // pw).permute(0, 1, 4, 2, 5, 3)
    return p.reshape(b, cpp // (ph * pw), h, w)


def reshape_folds(model: Any) -> None:
    """MobileViTv2's ``nn.functional.fold`` exports as ``aten::col2im``, which has no ONNX export
    at opset 17 (and torch's opset-18 one fails on it): its patches never overlap, so the same
    layer written as reshape + permute exports, with the same outputs and MACs."""
    import types

    def unfolding(self: Any, fmap: Any) -> tuple[Any, tuple[int, int]]:
        b, c = fmap.shape[:2]
        patches = unfold_patches(fmap, self.patch_height, self.patch_width)
        return patches.reshape(b, c, self.patch_height * self.patch_width, -1), tuple(fmap.shape[2:])

    def folding(self: Any, patches: Any, output_size: tuple[int, int]) -> Any:
        b, dim, size, n = patches.shape
        return fold_patches(patches.reshape(b, dim * size, n), output_size, self.patch_height,
                            self.patch_width)

    for module in model.modules():
        if type(module).__name__ == "MobileViTV2Layer":
            module.unfolding = types.MethodType(unfolding, module)
            module.folding = types.MethodType(folding, module)


def vit_module(name: str) -> tuple[Any, tuple[int, int, int, int]]:
    """The randomly initialised classifier of ViT ``name`` (logits only) and its input shape."""
    import torch
    import transformers

    spec = VITS.get(name)
    if spec is None:
        raise LedgformerError(f"ViT '{name}': no config written out in ledgformer.data.hf_vits.VITS")
    if spec.removed:
        raise LedgformerError(f"ViT '{name}' ({spec.hub_id}, {spec.config}): {spec.removed}")
    config = getattr(transformers, spec.config)(**spec.kwargs)
    config.architectures = config.architectures or []  # None trips from_config's class lookup
    model = transformers.AutoModelForImageClassification.from_config(config, attn_implementation="eager")
    reshape_folds(model)

    class Logits(torch.nn.Module):
        """Plain-tensor output for the exporter (HF models return ModelOutput objects)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=x).logits

    size = spec.image_size
    return Logits(), (1, int(getattr(config, "num_channels", 3)), size, size)


def _cache_path(name: str) -> Any:
    from ledgformer.graph.onnx_import import IMPORTER_VERSION

    spec = VITS[name]
    versions = {p: metadata.version(p) for p in ("torch", "onnx", "transformers")}
    blob = json.dumps([name, spec.config, spec.kwargs, spec.image_size, IR_VERSION, IMPORTER_VERSION,
                       versions], sort_keys=True)
    return cache_dir("graphs", "hf_vits") / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def build_vit(name: str) -> ArchGraph:
    """ArchGraph of ViT ``name`` at its image size, batch 1 (cached; unknown operators are an error)."""
    if name in VITS and not VITS[name].removed:
        path = _cache_path(name)
        if path.is_file():
            try:
                return ArchGraph.from_json(path.read_text())
            except (ValueError, KeyError, LedgformerError):
                path.unlink(missing_ok=True)
    module, shape = vit_module(name)
    from ledgformer.graph.torch_import import from_torch

    graph = from_torch(module, shape, name=name)
    unknown = sorted({n.raw_op or "?" for n in graph.nodes if n.op == "unknown"})
    if unknown:
        raise LedgformerError(f"ViT '{name}': operators outside the vocabulary: {', '.join(unknown)}")
    graph.meta["source"] = f"hf:{VITS[name].hub_id}"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(graph.to_json())
    tmp.replace(path)
    return graph


__all__ = ["VITS", "ViTSpec", "build_vit", "fold_patches", "reshape_folds", "unfold_patches", "vit_module"]
