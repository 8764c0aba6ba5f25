"""Training an ``ensemble`` run: each member alone, as its own single-model run would train it.

Member i trains with seed ``seed + 1000 i`` (member 0 with the run's seed, so an ensemble whose
first entry is ``{}`` contains exactly the single model that ``ensemble: []`` would train) and with
its own ``train`` section; all members see the same task data, split included. The members' own
validation and test metrics are reported beside the ensemble's (``members.{i}.*``), so what the
averaging adds is visible in every run.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ledgformer.model.registry import create_model
from ledgformer.train.config import ensemble_members
from ledgformer.train.tasks import TaskData
from ledgformer.train.trainer import Trainer, model_kwargs, set_seed

#: member metrics worth keeping beside the ensemble's (per-device/family detail stays out)
_MEMBER_METRICS = ("kendall_tau", "spearman", "mape", "acc@10%")


def member_seed(seed: int, i: int) -> int:
    return seed + 1000 * i


def _fit_member(model: nn.Module, data: TaskData, tcfg: dict[str, Any], seed: int, i: int
                ) -> tuple[Trainer, float]:
    """(member ``i``'s trainer after fitting it alone, its training seconds)."""
    trainer = Trainer(model, data, tcfg, seed=seed)
    seconds = trainer.fit()["train_seconds"]
    trainer.history = [{"member": i, **row} for row in trainer.history]
    return trainer, seconds


def fit_members(trainer: Trainer) -> dict[str, Any]:
    """``Trainer.fit`` of an ``ensemble`` model (``Predictor.fit``, say): every member alone with
    the trainer's settings, member i with seed + 1000 i, in place; the ensemble's own output scale
    (which K-shot scale fitting moves) goes back to the identity."""
    ensemble = trainer.model
    ensemble.set_target_stats(0.0, 1.0)
    total, trainer.history = 0.0, []
    for i, member in enumerate(ensemble.members):
        sub, seconds = _fit_member(member, trainer.data, trainer.cfg, member_seed(trainer.seed, i), i)
        total += seconds
        trainer.history += sub.history
    trainer.eval_model = ensemble
    valid = trainer.valid_score() if trainer.data.parts["valid"].size > 0 else None
    return {"best_epoch": -1, "epochs_run": len(trainer.history), "train_seconds": total,
            "train_graphs_per_s": float("nan"), "best_valid_score": valid}


def fit_ensemble(cfg: dict[str, Any], data: TaskData, seed: int) -> tuple[
        nn.Module, dict[str, Any], dict[str, Any], dict[str, float], list[dict[str, Any]]]:
    """(trained ``ensemble`` model, its constructor kwargs, fit summary, member metrics
    ``members.{i}.{part}.{metric}``, training history with a ``member`` column)."""
    members = ensemble_members(cfg)
    specs, trained, history = [], [], []
    summary: dict[str, Any] = {"train_seconds": 0.0}
    member_metrics: dict[str, float] = {}
    for i, mcfg in enumerate(members):
        s = member_seed(seed, i)
        set_seed(s)
        name, kw = model_kwargs(mcfg, data)
        model = create_model(name, **kw)
        trainer, seconds = _fit_member(model, data, mcfg["train"], s, i)
        summary["train_seconds"] += seconds
        metrics, _ = trainer.evaluate()
        member_metrics.update({f"members.{i}.{k}": v for k, v in metrics.items()
                               if k.count(".") == 1 and k.split(".")[1] in _MEMBER_METRICS})
        history += trainer.history
        specs.append({"name": name, **kw})
        trained.append(model)
    kwargs = {"members": specs, **model_kwargs({**cfg, "model": {"name": "ensemble"}}, data)[1]}
    ensemble = create_model("ensemble", **kwargs)
    for slot, model in zip(ensemble.members, trained, strict=True):
        slot.load_state_dict(model.state_dict())
    return ensemble, kwargs, summary, member_metrics, history


__all__ = ["fit_ensemble", "fit_members", "member_seed"]
