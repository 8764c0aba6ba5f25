"""Re-evaluate a checkpoint, and adapt a latency checkpoint to one device from K measured samples.

The device enters LeDG-Former only through its hardware card, so K = 0 is zero-shot prediction
and K > 0 adapts the model to the K samples (HELP's protocol: drawn from the device's sample pool,
never from its evaluation set) for a fixed number of steps (no validation data). How (steps, lr,
loss, which parameters) is the run config's ``finetune`` section, applied by
:mod:`ledgformer.train.recipes`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ledgformer.errors import LedgformerError
from ledgformer.model.reference import adapted_spec
from ledgformer.train.checkpoint import build_model, read_checkpoint, save_checkpoint
from ledgformer.train.config import DEFAULTS, finetune_settings, merge
from ledgformer.train.recipes import Adapted, adapt
from ledgformer.train.tasks import TaskData, build_task
from ledgformer.train.trainer import Trainer, set_seed


def restore(ckpt: dict[str, Any], cfg: dict[str, Any], path: str | Path) -> tuple[torch.nn.Module, TaskData]:
    """(model with the checkpoint's weights, the task of ``cfg``), versions checked against the data."""
    data = build_task(cfg)
    model = build_model(ckpt, f"checkpoint {path}", data.encoder_id,
                        data.data_version if cfg == ckpt["config"] else None)
    return model, data


def evaluate_checkpoint(path: str | Path, data_root: str | None = None) -> dict[str, Any]:
    """The checkpoint's metrics on its own task and split (rebuilt from the saved config)."""
    ckpt = read_checkpoint(path)
    cfg = copy.deepcopy(ckpt["config"])
    if data_root:
        cfg["data"]["data_root"] = data_root
    set_seed(int(cfg["seed"]))
    model, data = restore(ckpt, cfg, path)
    cfg["train"]["progress"] = False
    metrics, _ = Trainer(model, data, cfg["train"], seed=int(cfg["seed"])).evaluate()
    return metrics


class KShotTask(NamedTuple):
    """A HELP-protocol checkpoint set up for K-shot adaptation (see :func:`kshot_task`)."""

    ckpt: dict[str, Any]
    cfg: dict[str, Any]  # the checkpoint's config, completed with today's defaults, for this task
    model: torch.nn.Module  # the checkpoint's trained weights
    data: TaskData  # parts["shots"]: the K samples of every device; parts[part]: their evaluation sets

    def shots_of(self, device_row: int) -> np.ndarray:
        """The examples of the K samples of one device (a row of ``data.devices``)."""
        pool = self.data.parts["shots"]
        return pool[self.data.device_row[pool] == device_row]


def kshot_task(path: str | Path, shots: int, *, seed: int = 0, part: str = "test",
               devices: list[str] | None = None, data_root: str | None = None,
               what: str = "K-shot", ckpt: dict[str, Any] | None = None) -> KShotTask:
    """The K-shot task of a ``help-latency`` checkpoint: its model, and data holding ``shots`` samples
    of each ``part`` device (HELP's test or validation devices, or only ``devices``, HELP keys) drawn
    with ``seed`` from the device's sample pool, never from its evaluation set. ``what`` names the
    caller in the error a checkpoint of another task gets; ``ckpt``: ``path`` already read (callers
    that check a recipe against it first need not read it twice). Sets torch's thread count to the config's
    ``train.threads``, as training does, so that adapting and scoring repeat bit for bit."""
    if part not in ("test", "valid"):
        raise LedgformerError(f"few-shot part must be 'test' or 'valid', got {part!r}")
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    cfg = merge(DEFAULTS, ckpt["config"])
    if cfg["task"] != "help-latency":
        raise LedgformerError(f"checkpoint {path} is a {cfg['task']} model; {what} needs task help-latency")
    if data_root:
        cfg["data"]["data_root"] = data_root
    cfg["seed"] = seed
    cfg["train"]["progress"] = False
    cfg["data"].update(n_train_archs=0, eval_all=False, shots=shots, shots_part=part)
    if devices is not None:
        cfg["data"][f"{part}_devices"] = devices
    set_seed(seed)
    model, data = restore(ckpt, cfg, path)
    # the training's thread count: with more threads CPU reductions may split differently, and
    # K-shot metrics then differ in the 6th digit from run to run
    torch.set_num_threads(int(cfg["train"]["threads"]))
    return KShotTask(ckpt, cfg, model, data)


def few_shot_metrics(path: str | Path, shots: list[int], *, seed: int = 0, data_root: str | None = None,
                     part: str = "test", **overrides: Any) -> dict[str, float]:
    """``k<K>.*`` metrics of a HELP-protocol checkpoint: for each K, adapt a copy to each test device.

    The task (the K samples of every test device and their evaluation sets) is built once per K;
    each device then gets a fresh copy of the trained model, fine-tuned on its own K samples and
    scored on its own evaluation set. Keys: ``k<K>.per_device.<dev>.spearman|kendall_tau|mape|
    acc@10%`` and their means over the test devices (``k<K>.mean_device_spearman``, ``k<K>.mape``...).
    ``part="valid"``: the same on HELP's validation devices (K samples from their pools; keys
    ``valid.k<K>.*``), to choose a recipe without the test devices. The recipe is the checkpoint
    config's ``finetune`` section; ``overrides`` (steps, lr, loss, params...) replace its values.
    """
    from ledgformer.train.metrics import device_key

    ckpt = read_checkpoint(path)
    ft = finetune_settings(ckpt["config"], **overrides)  # bad overrides fail first
    prefix = "" if part == "test" else "valid."
    out: dict[str, float] = {}
    for k in shots:
        task = kshot_task(path, k, seed=seed, part=part, data_root=data_root, ckpt=ckpt)
        data = task.data
        parts = dict(data.parts)
        scored = parts[part]
        per: dict[str, dict[str, float]] = {}
        for d in sorted(set(data.device_row[scored].tolist())):
            data.parts = {**parts, "test": scored[data.device_row[scored] == d]}
            model = copy.deepcopy(task.model)
            trainer = Trainer(model, data, task.cfg["train"], seed=seed)
            adapted = adapt(trainer, model, task.shots_of(d), ft)
            m, _ = trainer.evaluate(("test",))
            dev = device_key(data.devices[d])
            per[dev] = {name: float(m[f"test.{name}"])
                        for name in ("spearman", "kendall_tau", "mape", "acc@10%")}
            out.update({f"{prefix}k{k}.per_device.{dev}.{name}": v for name, v in per[dev].items()})
            out.update(_choice_metrics(adapted, ft, f"{prefix}k{k}.per_device.{dev}."))
        out[f"{prefix}k{k}.mean_device_spearman"] = float(np.mean([p["spearman"] for p in per.values()]))
        for name in ("kendall_tau", "mape", "acc@10%"):
            out[f"{prefix}k{k}.{name}"] = float(np.mean([p[name] for p in per.values()]))
    return out


def _choice_metrics(adapted: Adapted, ft: dict[str, Any], prefix: str) -> dict[str, float]:
    """What a device's K samples chose, as numbers (means over seeds are shares): ``keep`` (the
    chosen keep) and, for a list of ``params``, ``params.<name>`` (1 for the chosen one, else 0)."""
    out = {} if adapted.keep is None else {f"{prefix}keep": adapted.keep}
    if adapted.params is not None:
        out.update({f"{prefix}params.{p}": float(p == adapted.params) for p in ft["params"]})
    return out


def finetune_checkpoint(path: str | Path, device: str, shots: int, *, seed: int = 0,
                        out: str | Path | None = None, data_root: str | None = None,
                        **overrides: Any) -> dict[str, Any]:
    """Zero-shot (``shots=0``) or K-shot metrics of ``device`` on its HELP evaluation set; the recipe
    is the checkpoint config's ``finetune`` section, ``overrides`` (steps, lr...) replace its values."""
    if not device.startswith("help/"):
        raise LedgformerError(f"device '{device}': only HELP cards (help/<key>) have a K-shot protocol here")
    ckpt = read_checkpoint(path)
    ft = finetune_settings(ckpt["config"], **overrides)  # bad overrides fail first
    _, cfg, model, data = kshot_task(path, shots, seed=seed, devices=[device.split("/", 1)[1]],
                                     data_root=data_root, what="finetune", ckpt=ckpt)
    cfg["finetune"] = ft
    trainer = Trainer(model, data, cfg["train"], seed=seed)
    before, _ = trainer.evaluate(("test",))
    result: dict[str, Any] = {"shots": shots, "zero_shot_spearman": before["test.spearman"],
                              "zero_shot_mape": before["test.mape"]}
    if shots > 0:
        model, chosen, chosen_params = adapt(trainer, model, data.parts["shots"], ft)
        after, _ = trainer.evaluate(("test",))
        result.update(spearman=after["test.spearman"], mape=after["test.mape"],
                      kendall_tau=after["test.kendall_tau"], **{"acc@10%": after["test.acc@10%"]})
        if chosen is not None:
            result["keep"] = chosen
        if chosen_params is not None:
            result["params"] = chosen_params
        if out:
            name, model_config = adapted_spec(model, ckpt["model_name"], ckpt["model_config"])
            save_checkpoint(Path(out) / "model.pt", model, config=cfg, model_name=name,
                            model_config=model_config, encoder_id=data.encoder_id,
                            data_version=data.data_version, extra={"finetuned_on": device, "shots": shots})
    if out:
        from ledgformer.train.report import write_metrics_json

        write_metrics_json(result, Path(out) / "metrics.json")
    return result


__all__ = ["KShotTask", "evaluate_checkpoint", "few_shot_metrics", "finetune_checkpoint", "kshot_task",
           "restore"]
