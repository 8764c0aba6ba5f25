"""``ensemble``: the mean prediction of several independently trained predictors.

Members may be different models (a LeDG-Former beside GINs): their errors are less alike than
those of copies of one model, so the mean ranks better per unit of training (README, *Training*).
Each member is trained alone, with its own seed and train settings (``ledgformer.train.ensemble``);
this module only holds them and averages their outputs in model space (log-ms for latency, so the
ensemble's latency is the geometric mean of its members'). Its own output standardisation starts
as the identity and is what K-shot ``finetune.params=scale`` adjusts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.model.features import Batch, HardwareBatch
from ledgformer.model.registry import PredictorModel, create_model, register_model


@register_model("ensemble")
class Ensemble(PredictorModel):
    """``members``: one ``{"name": model, **its config}`` per member; the data-fixed keys this
    ensemble receives (``task``, ``text_dim``, ``hw_text_dim``, ``use_hardware``) fill in what a
    member's config leaves out."""

    def __init__(self, members: Sequence[Mapping[str, Any]], task: str = "accuracy", text_dim: int = 384,
                 use_hardware: bool | None = None, hw_text_dim: int | None = None) -> None:
        super().__init__()
        if not members:
            raise LedgformerError("model 'ensemble' needs at least one member")
        fixed = {"task": task, "text_dim": text_dim, "use_hardware": use_hardware}
        if hw_text_dim is not None:
            fixed["hw_text_dim"] = hw_text_dim
        built = []
        for i, spec in enumerate(members):
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise LedgformerError(f"ensemble member {i}: expected a mapping with a model 'name', "
                                      f"got {spec!r}")
            if spec["name"] == "ensemble":
                raise LedgformerError(f"ensemble member {i}: an ensemble cannot hold an ensemble")
            kw = {k: v for k, v in spec.items() if k != "name"}
            built.append(create_model(spec["name"], **{**fixed, **kw}))
        self.members = nn.ModuleList(built)
        self.task = task
        self.has_hw = any(bool(getattr(m, "has_hw", False)) for m in built)
        # encode each graph once for all its devices only where every member can
        self.shares_graphs = all(bool(getattr(m, "shares_graphs", False)) for m in built)

    def member_outputs(self, batch: Batch, hw: HardwareBatch | None = None,
                       graph_index: torch.Tensor | None = None) -> torch.Tensor:
        """[members, B]: each member's output in model space."""
        kw = {} if graph_index is None else {"graph_index": graph_index}
        return torch.stack([m(batch, hw, **kw) for m in self.members])

    def forward(self, batch: Batch, hw: HardwareBatch | None = None,
                graph_index: torch.Tensor | None = None) -> torch.Tensor:
        return self.unscale(self.member_outputs(batch, hw, graph_index).mean(0))
