"""Named models (``pytorchcv:NAME``, ``timm:NAME``, ``torchvision:NAME``) and ONNX files -> ArchGraph.

Exporting a model takes seconds; a parsed graph is a few hundred kB of JSON. ``load_model``
keeps each parsed named model under ``cache_dir("graphs")``, keyed by the spec, the input shape,
the IR and importer versions and the library versions, so a second load is a file read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import torch

from ledgformer.cache import cache_dir
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import IR_VERSION, ArchGraph
from ledgformer.graph.onnx_import import IMPORTER_VERSION, load_onnx

_SOURCES = ("pytorchcv", "timm", "torchvision")
#: torchvision models whose auxiliary (training-only) heads are switched off, so the module's
#: parameters are exactly those the inference graph uses
_NO_AUX = frozenset({"googlenet", "inception_v3"})
_LIST_HINT = {
    "pytorchcv": "python -c \"from pytorchcv.model_provider import _models; print(sorted(_models))\"",
    "timm": "python -c \"import timm; print(timm.list_models('*resnet*'))\"",
    "torchvision": "python -c \"import torchvision; print(torchvision.models.list_models())\"",
}


def _split(spec: str) -> tuple[str, str]:
    source, sep, name = spec.partition(":")
    if not sep or source not in _SOURCES or not name:
        raise LedgformerError(
            f"'{spec}' is neither an ONNX file nor a model name; use pytorchcv:NAME, timm:NAME or "
            "torchvision:NAME (e.g. pytorchcv:resnet18, timm:vit_tiny_patch16_224) or an .onnx path")
    return source, name


def build_module(spec: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The untrained module of ``spec`` and its default input shape (batch 1)."""
    source, name = _split(spec)
    if source == "pytorchcv":
        from pytorchcv.model_provider import _models, get_model

        if name not in _models:
            raise LedgformerError(f"'{spec}': unknown pytorchcv model '{name}'; list the valid names "
                                  f"with: {_LIST_HINT['pytorchcv']}")
        module = get_model(name, pretrained=False)
        size = tuple(getattr(module, "in_size", (224, 224)))
        channels = int(getattr(module, "in_channels", 3) or 3)
        return module, (1, channels, *size)
    if source == "torchvision":
        return _torchvision(spec, name)
    import timm

    if not timm.is_model(name):
        raise LedgformerError(f"'{spec}': unknown timm model '{name}'; list the valid names with: "
                              f"{_LIST_HINT['timm']}")
    module = timm.create_model(name, pretrained=False)
    cfg_shape = (getattr(module, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    return module, (1, *(int(d) for d in cfg_shape))


def _torchvision(spec: str, name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    import torchvision

    if name not in torchvision.models.list_models():
        raise LedgformerError(f"'{spec}': unknown torchvision model '{name}'; list the valid names "
                              f"with: {_LIST_HINT['torchvision']}")
    kwargs = {"aux_logits": False, "init_weights": False} if name in _NO_AUX else {}
    module = torchvision.models.get_model(name, weights=None, **kwargs)
    try:  # the evaluation crop of the model's published weights, when it has any
        crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size
        size = (int(crop[0]), int(crop[-1]))
    except (ValueError, AttributeError, IndexError, TypeError):
        size = (224, 224)
    return module, (1, 3, *size)


def _versions(source: str) -> dict[str, str]:
    out = {}
    for pkg in ("torch", "onnx", source, "ledgformer"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


def cache_key(spec: str, input_shape: Sequence[int] | None, batch_size: int | None) -> str:
    """Cache key of a named model's parsed graph (changes with any version that affects it).

    Keyed on the shape the user asked for (None = the model's default) so a cached default-shape
    graph is found without building the module first.
    """
    source, _ = _split(spec)
    shape = None if input_shape is None else [int(d) for d in input_shape]
    blob = json.dumps([spec, shape, batch_size, IR_VERSION, IMPORTER_VERSION, _versions(source)])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_model(
    spec: str,
    *,
    input_shape: Sequence[int] | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ArchGraph:
    """ArchGraph of an ONNX file or of a ``pytorchcv:NAME`` / ``timm:NAME`` model (cached)."""
    if spec.lower().endswith(".onnx") or Path(spec).is_file():
        return load_onnx(spec, input_shape=input_shape, batch_size=batch_size, progress=progress)
    path = cache_dir("graphs") / f"{cache_key(spec, input_shape, batch_size)}.json"
    if path.is_file():
        try:
            graph = ArchGraph.from_json(path.read_text())
        except (ValueError, KeyError, LedgformerError):
            path.unlink(missing_ok=True)  # a damaged entry: parse again
        else:
            if progress is not None:
                progress(1, 1)
            return graph
    module, default_shape = build_module(spec)
    shape = tuple(int(d) for d in (input_shape or default_shape))
    if batch_size is not None:
        shape = (int(batch_size), *shape[1:])
    from ledgformer.graph.torch_import import export_onnx

    graph = load_onnx(export_onnx(module, shape), input_shape=shape, name=spec, progress=progress)
    graph.meta["source"] = spec
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(graph.to_json())
    tmp.replace(path)
    return graph


__all__ = ["build_module", "cache_key", "load_model"]
