"""Model registry: every predictor (LeDG-Former and the baselines) is created by name from a config.

A model is an ``nn.Module`` subclassing :class:`PredictorModel`: ``forward(batch, hw)`` returns one
value per graph in *model space* (log-milliseconds for latency, standardised accuracy), and
``predict`` maps it to the target's unit. ``hw`` is a ``HardwareBatch`` or None (accuracy tasks).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.model.features import Batch, HardwareBatch

M = TypeVar("M", bound=type[nn.Module])
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class PredictorModel(nn.Module):
    """Base class: ``task`` is "latency" (outputs log-ms; ``predict`` = exp) or "accuracy"."""

    task: str = "accuracy"

    def __init__(self) -> None:
        super().__init__()
        # target standardisation (model space), set by the trainer from the training targets
        self.register_buffer("y_loc", torch.zeros(()))
        self.register_buffer("y_scale", torch.ones(()))

    def set_target_stats(self, loc: float, scale: float) -> None:
        self.y_loc.fill_(float(loc))
        self.y_scale.fill_(max(float(scale), 1e-6))

    def unscale(self, raw: torch.Tensor) -> torch.Tensor:
        """Standardised network output -> model space (what ``forward`` returns)."""
        return raw * self.y_scale + self.y_loc

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        """Predictions in model space mapped to the target's unit (latency: positive ms)."""
        out = self(batch, hw)
        return out.exp() if self.task == "latency" else out


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: make ``create_model(name, **cfg)`` build this class."""

    def wrap(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise LedgformerError(f"model name '{name}' is registered twice")
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    """Import the modules that register models (the baselines may not exist yet)."""
    import importlib

    for mod in ("ledgformer.model.ledgformer", "ledgformer.model.baselines", "ledgformer.model.ensemble",
                "ledgformer.model.reference"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def model_defaults(name: str) -> dict[str, Any]:
    """Config keys of model ``name`` that have a default, with it: the fields of its
    ``config_class`` dataclass, else its constructor's keyword defaults (what a config that leaves
    the key out gets)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise LedgformerError(f"unknown model '{name}'; known models: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    config_class = getattr(cls, "config_class", None)
    if config_class is not None:
        return {f.name: f.default for f in dataclasses.fields(config_class)
                if f.default is not dataclasses.MISSING}
    params = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build model ``name`` from its config keys (unknown keys are an error naming the key)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise LedgformerError(f"unknown model '{name}'; known models: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**cfg)
    except TypeError as err:
        raise LedgformerError(f"model '{name}': bad config ({err})") from err


__all__ = ["PredictorModel", "create_model", "list_models", "model_defaults", "register_model"]
