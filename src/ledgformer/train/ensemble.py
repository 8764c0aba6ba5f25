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
        trainer = Trainer(model, data, mcfg["train"], seed=s)
        fit = trainer.fit()
        summary["train_seconds"] += fit["train_seconds"]
        metrics, _ = trainer.evaluate()
        member_metrics.update({f"members.{i}.{k}": v for k, v in metrics.items()
                               if k.count(".") == 1 and k.split(".")[1] in _MEMBER_METRICS})
        history += [{"member": i, **row} for row in trainer.history]
        specs.append({"name": name, **kw})
        trained.append(model)
    kwargs = {"members": specs, **model_kwargs({**cfg, "model": {"name": "ensemble"}}, data)[1]}
    ensemble = create_model("ensemble", **kwargs)
    for slot, model in zip(ensemble.members, trained, strict=True):
        slot.load_state_dict(model.state_dict())
    return ensemble, kwargs, summary, member_metrics, history


__all__ = ["fit_ensemble", "member_seed"]
