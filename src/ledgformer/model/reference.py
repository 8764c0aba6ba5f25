"""``reference-blend``: a latency model adapted to one device as a mix of devices it knows.

K-shot recipe ``finetune.params: reference`` (``ledgformer.train.recipes``): a new device is
often close to a mix of the training devices (a TITAN RTX at batch 256 to a 1080 Ti at batch 256),
and the trained model ranks those well. So no weight moves: the base model predicts the graph on
each reference card (the training devices') and on the device's own card, and the device's log
latency is a fixed non-negative combination of those columns plus a constant, fitted on the K
measured samples. The reference cards' features are stored as buffers, so a saved adapted model
predicts without the training data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.model.features import Batch, HardwareBatch
from ledgformer.model.registry import PredictorModel, create_model, register_model


@register_model("reference-blend")
class ReferenceBlend(PredictorModel):
    """``base``: ``{"name": model, **its config}`` (or the built model, when adapting one);
    ``references``: the reference cards' names (the record of what the columns are); ``hw_dims``:
    (text embedding size, card feature count). Output: ``unscale(columns @ mix)``, columns = the
    base's outputs on [*references, own card]; ``mix`` starts as the own card alone."""

    task = "latency"

    def __init__(self, base: Mapping[str, Any] | nn.Module, references: Sequence[str], hw_dims: Sequence[int],
                 task: str = "latency") -> None:
        super().__init__()
        if task != "latency":
            raise LedgformerError(f"model 'reference-blend' predicts latency, got task {task!r}")
        if isinstance(base, nn.Module):
            self.base = base
        elif isinstance(base, Mapping) and "name" in base and base["name"] != "reference-blend":
            self.base = create_model(base["name"], **{k: v for k, v in base.items() if k != "name"})
        else:
            raise LedgformerError(f"reference-blend: base must be a mapping with a model 'name' other "
                                  f"than reference-blend, got {base!r}")
        if isinstance(self.base, ReferenceBlend) or not getattr(self.base, "has_hw", False):
            raise LedgformerError(f"reference-blend: the base model ({type(self.base).__name__}) must be "
                                  "a latency model that reads the hardware card, not a blend")
        self.references = list(references)
        n, (d_text, d_feat) = len(self.references), hw_dims
        self.register_buffer("ref_text", torch.zeros(n, int(d_text)))
        self.register_buffer("ref_feat", torch.zeros(n, int(d_feat)))
        self.register_buffer("mix", torch.cat([torch.zeros(n), torch.ones(1)]))  # default: own card only
        self.has_hw = True
        # encode each graph once for all its cards where the base can
        self.shares_graphs = bool(getattr(self.base, "shares_graphs", False)) \
            and hasattr(self.base, "encode") and hasattr(self.base, "decode")

    def _cards(self, hw: HardwareBatch) -> list[HardwareBatch]:
        """Each reference card repeated for every row of ``hw``, then ``hw`` itself."""
        b = hw.text.shape[0]
        refs = [HardwareBatch(t.expand(b, -1), f.expand(b, -1))
                for t, f in zip(self.ref_text[:, None], self.ref_feat[:, None], strict=True)]
        return [*refs, hw]

    def columns(self, batch: Batch, hw: HardwareBatch | None,
                graph_index: torch.Tensor | None = None) -> torch.Tensor:
        """[B, references + 1]: the base model's outputs (model space) on each reference card and
        on ``hw``; row r is graph ``graph_index[r]`` (default r), as in the base's ``forward``."""
        _need_cards(hw)
        if self.shares_graphs:
            x = self.base.encode(batch)
            if graph_index is not None:
                x, batch = x[graph_index], batch.index(graph_index)
            return self.decode_columns(x, batch, hw)
        kw = {} if graph_index is None else {"graph_index": graph_index}
        return torch.stack([self.base(batch, h, **kw) for h in self._cards(hw)], -1)

    def decode_columns(self, x: torch.Tensor, batch: Batch, hw: HardwareBatch) -> torch.Tensor:
        return torch.stack([self.base.decode(x, batch, h) for h in self._cards(hw)], -1)

    # encode / decode and the late-fusion split: the base's, so the API's per-graph caches (the
    # disk one keyed by the base's weights, ``encoder_model``) serve every card
    @property
    def config(self) -> Any:
        return getattr(self.base, "config", None)

    @property
    def encoder_model(self) -> nn.Module:
        """The module whose weights the graph encodings depend on."""
        return self.base

    def encode(self, batch: Batch) -> torch.Tensor:
        return self.base.encode(batch)

    def late_fusion_parts(self, x: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.late_fusion_parts(x, batch)

    def late_fusion_readout(self, graph: torch.Tensor, node: torch.Tensor, mask: torch.Tensor,
                            hw: HardwareBatch) -> torch.Tensor:
        cols = [self.base.late_fusion_readout(graph, node, mask, h) for h in self._cards(hw)]
        return self.unscale(torch.stack(cols, -1) @ self.mix)

    def decode(self, x: torch.Tensor, batch: Batch, hw: HardwareBatch | None) -> torch.Tensor:
        _need_cards(hw)
        return self.unscale(self.decode_columns(x, batch, hw) @ self.mix)

    def forward(self, batch: Batch, hw: HardwareBatch | None = None,
                graph_index: torch.Tensor | None = None) -> torch.Tensor:
        return self.unscale(self.columns(batch, hw, graph_index) @ self.mix)


def _need_cards(hw: HardwareBatch | None) -> None:
    if hw is None:
        raise LedgformerError("a reference-blend model predicts latency on a device: pass the hardware cards")


def adapted_spec(model: nn.Module, model_name: str,
                 model_config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(model name, model config) that rebuild ``model``, adapted from a model of ``model_name`` /
    ``model_config``: those unchanged, unless the adaptation made a :class:`ReferenceBlend` (around
    the original, or around the base of an original that was a blend already)."""
    if not isinstance(model, ReferenceBlend):
        return model_name, dict(model_config)
    if model_name == "reference-blend":
        base = dict(model_config["base"])
        model_name = base.pop("name")
        model_config = base
    return "reference-blend", {"base": {"name": model_name, **model_config}, "references": model.references,
                               "hw_dims": [model.ref_text.shape[1], model.ref_feat.shape[1]],
                               "task": "latency"}


__all__ = ["ReferenceBlend", "adapted_spec"]
