"""K-shot recipes: how a latency model is adapted to one device from K measured samples.

A recipe is a ``finetune`` section (:func:`~ledgformer.train.config.finetune_settings`): which
parameters move (all, readout, roofline, or none: a log-latency scale, or a mix of the training
devices' predictions), for how many steps, and how much of the zero-shot weights is kept; lists of
``params`` / ``keep`` values are chosen per device by cross-validation on its own K samples.
:mod:`ledgformer.train.finetune` applies these to HELP-protocol checkpoints; ``Predictor.adapt``
to a user's own measurements.
"""

from __future__ import annotations

import copy
import json
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls

from ledgformer.errors import LedgformerError
from ledgformer.model.features import HardwareBatch
from ledgformer.model.reference import ReferenceBlend
from ledgformer.train.config import UNTRAINED_PARAMS, finetune_params, finetune_settings
from ledgformer.train.tasks import TaskData
from ledgformer.train.trainer import Trainer, pairwise_rank_loss

#: parameters that ``params: readout`` trains: the hardware token (card MLPs) and the output heads
#: (LeDG-Former's late-fusion readout; the baselines' card MLP and head). The graph encoder stays.
READOUT_PARAMS = ("hw_tok", "hw_mlp", "hw_text", "graph_head", "node_head", "head")


#: the level refit after ``keep`` (the FBNet config's ``params: scale`` recipe, chosen on its valid devices)
RESCALE = {"lr": 0.05, "steps": 100}


#: parameters that ``params: roofline`` trains: the layers that read the device's compute and
#: memory throughput and per-node overhead (P, B, O of the roofline prior) from its hardware token.
#: K samples then move where the device sits on the roofline, not what the graph encoder learned.
ROOFLINE_PARAMS = ("roofline", "roofline_card", "roofline_overhead")


def _module_of(name: str) -> str:
    """The top-level module of parameter ``name`` (an ensemble's: of its member)."""
    parts = name.split(".")
    return parts[2] if parts[0] == "members" and len(parts) > 2 else parts[0]


#: ``finetune.params`` -> the top-level modules it trains (``all`` trains every parameter)
PARAM_GROUPS = {"readout": READOUT_PARAMS, "roofline": ROOFLINE_PARAMS}


def _trainable(model: torch.nn.Module, params: str) -> list[torch.nn.Parameter]:
    if params == "all":
        return list(model.parameters())
    group = PARAM_GROUPS[params]
    chosen = [p for n, p in model.named_parameters() if _module_of(n) in group]
    if not chosen:
        raise LedgformerError(f"finetune.params={params}: {type(model).__name__} has none of the "
                              f"parameters {', '.join(group)}")
    return chosen


def _loss(pred: torch.Tensor, y: torch.Tensor, loss: str, rank_weight: float) -> torch.Tensor:
    out = F.mse_loss(pred, y)
    if loss == "mse+rank":
        out = out + rank_weight * pairwise_rank_loss(pred, y, torch.zeros_like(y), 0.0)
    return out


def _fit_scale(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, y: torch.Tensor,
               ft: dict[str, Any]) -> None:
    """Fit ``exp(s) * (pred - m) + m + b`` (m: mean prediction on the K samples) and fold it into the
    model's output standardisation (``y_scale``, ``y_loc``): a monotone map, so the ranking of the
    zero-shot model is kept exactly and only the device's latency level and spread are learned."""
    if not isinstance(getattr(model, "y_scale", None), torch.Tensor):
        raise LedgformerError(f"finetune.params=scale: {type(model).__name__} has no output "
                              "standardisation (y_loc / y_scale buffers)")
    model.eval()
    with torch.no_grad():
        pred = trainer._forward(idx, model).float()
    m = pred.mean()
    s = torch.zeros((), device=pred.device, requires_grad=True)
    b = torch.zeros((), device=pred.device, requires_grad=True)
    opt = torch.optim.AdamW([s, b], lr=ft["lr"], weight_decay=ft["weight_decay"])
    for _ in range(ft["steps"]):
        opt.zero_grad(set_to_none=True)
        _loss(s.exp() * (pred - m) + m + b, y, ft["loss"], ft["rank_weight"]).backward()
        opt.step()
    with torch.no_grad():
        a = s.exp().to(model.y_scale)
        model.y_loc.copy_(a * (model.y_loc - m) + m + b)
        model.y_scale.mul_(a)


class Adapted(NamedTuple):
    """What :func:`adapt` made: the adapted model (``model`` itself, or for ``params: reference`` a
    :class:`~ledgformer.model.reference.ReferenceBlend` around it), the ``keep`` the K samples chose
    (None: no choice among keep values was made, or the chosen ``params`` trains no weight) and the
    ``params`` they chose (None: ``params`` was not a list)."""

    model: torch.nn.Module
    keep: float | None
    params: str | None = None


def adapt(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, settings: dict[str, Any] | None = None,
          references: tuple[list[str], HardwareBatch] | None = None) -> Adapted:
    """Fit ``model`` to the examples ``idx`` (K measured samples) with a ``finetune`` section
    (:func:`~ledgformer.train.config.finetune_settings`; default: 100 full-batch AdamW steps, lr 1e-3,
    log-latency MSE, every parameter; no validation data). Closed-form models refit on them.

    ``params``: ``all``; ``readout`` (:data:`READOUT_PARAMS` only, the graph encoder is frozen);
    ``roofline`` (:data:`ROOFLINE_PARAMS` only: the device's throughputs and overhead);
    ``scale`` (no parameter moves: a per-device log-latency scale + shift, see :func:`_fit_scale`); or
    ``reference`` (no parameter moves: the device as a non-negative mix of the model's predictions
    on the ``references`` cards and its own, see :func:`_fit_reference`; default references: the
    training devices of ``trainer.data``).
    ``keep`` > 0 then pulls the trained weights back towards the zero-shot ones (WiSE-FT: K samples
    say where the device differs, the zero-shot weights what the training devices agree on) and
    refits the output scale and shift on the K samples (:data:`RESCALE`), since the level of
    interpolated weights is neither model's. A list of ``keep`` values, or of ``params`` values: the
    device's own K samples choose one recipe among them (:func:`_choose`). ``trainer`` then predicts
    with the adapted model.
    """
    if trainer.closed_form:  # FLOPs scale / GBDT: refit on the K samples of this device
        trainer.data.parts["train"] = idx
        trainer.fit()
        return Adapted(model, None)
    ft = finetune_settings({"finetune": settings or {}})
    y = torch.as_tensor(np.log(trainer.data.target[idx]), dtype=torch.float32, device=trainer.device)
    several_params, several_keep = isinstance(ft["params"], list), isinstance(ft["keep"], list)
    if "reference" in finetune_params(ft):
        references = references or training_references(trainer.data)
    if several_params or several_keep:
        params, keep = _choose(trainer, model, idx, y, ft, references)
        ft = {**ft, "params": params, "keep": keep}
    adapted = _adapt_one(trainer, model, idx, y, ft, references)
    chosen_keep = ft["keep"] if several_keep and ft["params"] not in UNTRAINED_PARAMS else None
    return Adapted(adapted, chosen_keep, ft["params"] if several_params else None)


def _adapt_one(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, y: torch.Tensor,
               ft: dict[str, Any], references: tuple[list[str], HardwareBatch] | None) -> torch.nn.Module:
    """One recipe (a single ``params`` and ``keep``); ``trainer`` then predicts with its result."""
    if ft["params"] == "reference":
        blend = _fit_reference(trainer, model, idx, y, references)
        trainer.use_model(blend)
        return blend
    if ft["params"] == "scale":
        _fit_scale(trainer, model, idx, y, ft)
        return model
    zero_shot = copy.deepcopy(model) if ft["keep"] else None
    _train(trainer, model, idx, y, ft)
    if zero_shot is not None:
        _blend(model, zero_shot, ft["keep"], trainer, idx, y, ft)
    return model


def training_references(data: TaskData) -> tuple[list[str], HardwareBatch]:
    """The training devices of a task (its split's ``devices.train``) and their cards' tensors."""
    names = json.loads(data.split_json or "{}").get("devices", {}).get("train") if data.split_json else None
    if not names or data.hw is None:
        raise LedgformerError("finetune.params=reference blends the training devices, but this task "
                              "records none (a HELP-protocol checkpoint does)")
    rows = torch.as_tensor([data.devices.index(n) for n in names])
    return list(names), data.hw.index(rows)


def _fit_reference(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, y: torch.Tensor,
                   references: tuple[list[str], HardwareBatch]) -> ReferenceBlend:
    """A :class:`ReferenceBlend` of ``model`` (of its base, if it is a blend already) whose mix is
    :func:`reference_mix` of the K samples' columns (reference cards, own card)."""
    names, hw = references
    base = model.base if isinstance(model, ReferenceBlend) else model
    blend = ReferenceBlend(base, names, (hw.text.shape[1], hw.feat.shape[1])).to(trainer.device)
    blend.eval()
    with torch.no_grad():
        blend.ref_text.copy_(hw.text)
        blend.ref_feat.copy_(hw.feat)
        cols = trainer._forward(idx, blend.columns).double().cpu().numpy()
    w, b = reference_mix(cols, y.double().cpu().numpy())
    with torch.no_grad():
        blend.mix.copy_(torch.as_tensor(w))
        blend.set_target_stats(b, 1.0)
    return blend


def reference_mix(columns: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(w >= 0, b) with ``columns @ w + b`` ~ ``y`` (log ms of the K samples; the last column is the
    device's own card): NNLS on the centred columns, b matching the means. An all-zero fit gives
    the own column with the level shifted to ``y``'s mean."""
    mu = columns.mean(0)
    w, _ = nnls(columns - mu, y - y.mean())
    if not w.any():
        w[-1] = 1.0
    return w, float(y.mean() - mu @ w)


def _train(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, y: torch.Tensor,
           ft: dict[str, Any]) -> None:
    """``ft["steps"]`` full-batch AdamW steps of ``ft["params"]`` on the examples ``idx``, in place."""
    chosen = _trainable(model, ft["params"])
    ids = {id(p) for p in chosen}
    frozen = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    for p in frozen:  # no gradients through the frozen part's weights (faster; they cannot move)
        p.requires_grad_(False)
    try:
        opt = torch.optim.AdamW(chosen, lr=ft["lr"], weight_decay=ft["weight_decay"])
        model.train()
        for _ in range(ft["steps"]):
            opt.zero_grad(set_to_none=True)
            _loss(trainer._forward(idx, model), y, ft["loss"], ft["rank_weight"]).backward()
            opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _blend(model: torch.nn.Module, zero_shot: torch.nn.Module, keep: float, trainer: Trainer,
           idx: np.ndarray, y: torch.Tensor, ft: dict[str, Any]) -> None:
    """weights = keep x zero-shot + (1 - keep) x fine-tuned, then the output level refit on ``idx``."""
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), zero_shot.parameters(), strict=True):
            p.lerp_(p0, keep)
    _fit_scale(trainer, model, idx, y, {**ft, **RESCALE})


def _candidates(ft: dict[str, Any]) -> list[tuple[str, float]]:
    """The (params, keep) recipes a device chooses among: every listed ``params`` that trains weights
    with every ``keep``, and each one that trains none (scale, reference) once, with keep 0."""
    keeps = ft["keep"] if isinstance(ft["keep"], list) else [ft["keep"]]
    return [(p, k) for p in finetune_params(ft) for k in ([0.0] if p in UNTRAINED_PARAMS else keeps)]


def _choose(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, y: torch.Tensor, ft: dict[str, Any],
            references: tuple[list[str], HardwareBatch] | None) -> tuple[str, float]:
    """The recipe (of :func:`_candidates`) with the lowest out-of-fold log-latency squared error on the
    K samples: ``ft["folds"]``-fold cross-validation, each fold's model adapted on the other folds
    (one fine-tuning per fold and trained ``params`` serves every ``keep``). A device whose zero-shot
    ranking its K samples contradict moves to the fine-tuned weights; one they confirm keeps more of
    the zero-shot weights; one that a mix of the training devices explains takes the reference
    blend, without a validation device having to stand in for it. Ties go to the earlier recipe."""
    if len(idx) < ft["folds"]:
        raise LedgformerError(f"finetune params {ft['params']} / keep {ft['keep']}: choosing by "
                              f"{ft['folds']}-fold cross-validation needs at least {ft['folds']} samples, "
                              f"got K = {len(idx)}")
    candidates = _candidates(ft)
    folds = np.array_split(np.random.default_rng(trainer.seed).permutation(len(idx)), ft["folds"])
    err = np.zeros(len(candidates))
    for held in folds:
        fit = np.setdiff1d(np.arange(len(idx)), held)
        tuned: dict[str, torch.nn.Module] = {}
        for j, (params, keep) in enumerate(candidates):
            if params == "reference":
                m = _fit_reference(trainer, model, idx[fit], y[fit], references)
            elif params == "scale":
                m = copy.deepcopy(model)
                _fit_scale(trainer, m, idx[fit], y[fit], ft)
            else:
                if params not in tuned:
                    tuned[params] = copy.deepcopy(model)
                    _train(trainer, tuned[params], idx[fit], y[fit], {**ft, "params": params})
                m = tuned[params]
                if keep:
                    m = copy.deepcopy(m)
                    _blend(m, model, keep, trainer, idx[fit], y[fit], ft)
            m.eval()
            with torch.no_grad():
                err[j] += float((trainer._forward(idx[held], m).float() - y[held]).pow(2).sum())
    return candidates[int(np.argmin(err))]


__all__ = ["PARAM_GROUPS", "READOUT_PARAMS", "RESCALE", "ROOFLINE_PARAMS", "Adapted", "adapt",
           "reference_mix", "training_references"]
