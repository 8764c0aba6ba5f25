"""Re-evaluate a checkpoint, and adapt a latency checkpoint to one device from K measured samples.

The device enters LeDG-Former only through its hardware card, so K = 0 is zero-shot prediction
and K > 0 fine-tunes the whole model on the K samples (HELP's protocol: drawn from the device's
sample pool, never from its evaluation set) for a fixed number of steps (no validation data).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ledgformer.errors import LedgformerError
from ledgformer.model.registry import create_model
from ledgformer.train.checkpoint import check_versions, read_checkpoint, save_checkpoint
from ledgformer.train.tasks import TaskData, build_task
from ledgformer.train.trainer import Trainer, set_seed


def _restore(ckpt: dict[str, Any], cfg: dict[str, Any], path: str | Path) -> tuple[torch.nn.Module, TaskData]:
    data = build_task(cfg)
    check_versions(ckpt, f"checkpoint {path}", data.encoder_id,
                   data.data_version if cfg == ckpt["config"] else None)
    model = create_model(ckpt["model_name"], **ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    return model, data


def evaluate_checkpoint(path: str | Path, data_root: str | None = None) -> dict[str, Any]:
    """The checkpoint's metrics on its own task and split (rebuilt from the saved config)."""
    ckpt = read_checkpoint(path)
    cfg = copy.deepcopy(ckpt["config"])
    if data_root:
        cfg["data"]["data_root"] = data_root
    set_seed(int(cfg["seed"]))
    model, data = _restore(ckpt, cfg, path)
    cfg["train"]["progress"] = False
    metrics, _ = Trainer(model, data, cfg["train"], seed=int(cfg["seed"])).evaluate()
    return metrics


def adapt(trainer: Trainer, model: torch.nn.Module, idx: np.ndarray, *, steps: int = 100,
          lr: float = 1e-3) -> None:
    """Fit ``model`` to the examples ``idx`` (K measured samples): closed-form models refit on them,
    neural ones take ``steps`` full-batch AdamW steps on the log-latency MSE (no validation data)."""
    if trainer.closed_form:  # FLOPs scale / GBDT: refit on the K samples of this device
        trainer.data.parts["train"] = idx
        trainer.fit()
        return
    y = torch.as_tensor(np.log(trainer.data.target[idx]), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.mse_loss(trainer._forward(idx, model), y).backward()
        opt.step()


def few_shot_metrics(path: str | Path, shots: list[int], *, steps: int = 100, lr: float = 1e-3,
                     seed: int = 0, data_root: str | None = None) -> dict[str, float]:
    """``k<K>.*`` metrics of a HELP-protocol checkpoint: for each K, adapt a copy to each test device.

    The task (the K samples of every test device and their evaluation sets) is built once per K;
    each device then gets a fresh copy of the trained model, fine-tuned on its own K samples and
    scored on its own evaluation set. Keys: ``k<K>.per_device.<dev>.spearman|kendall_tau|mape|
    acc@10%`` and their means over the test devices (``k<K>.mean_device_spearman``, ``k<K>.mape``...).
    """
    from ledgformer.train.metrics import device_key

    ckpt = read_checkpoint(path)
    out: dict[str, float] = {}
    for k in shots:
        cfg = copy.deepcopy(ckpt["config"])
        if cfg["task"] != "help-latency":
            raise LedgformerError(f"checkpoint {path} is a {cfg['task']} model; K-shot needs "
                                  "task help-latency")
        if data_root:
            cfg["data"]["data_root"] = data_root
        cfg["seed"] = seed
        cfg["data"].update(n_train_archs=0, eval_all=False, shots=k)
        cfg["train"]["progress"] = False
        set_seed(seed)
        base, data = _restore(ckpt, cfg, path)
        parts = dict(data.parts)
        test, pool = parts["test"], parts["shots"]
        per: dict[str, dict[str, float]] = {}
        for d in sorted(set(data.device_row[test].tolist())):
            data.parts = {**parts, "test": test[data.device_row[test] == d]}
            model = copy.deepcopy(base)
            trainer = Trainer(model, data, cfg["train"], seed=seed)
            adapt(trainer, model, pool[data.device_row[pool] == d], steps=steps, lr=lr)
            m, _ = trainer.evaluate(("test",))
            dev = device_key(data.devices[d])
            per[dev] = {name: float(m[f"test.{name}"])
                        for name in ("spearman", "kendall_tau", "mape", "acc@10%")}
            out.update({f"k{k}.per_device.{dev}.{name}": v for name, v in per[dev].items()})
        out[f"k{k}.mean_device_spearman"] = float(np.mean([p["spearman"] for p in per.values()]))
        for name in ("kendall_tau", "mape", "acc@10%"):
            out[f"k{k}.{name}"] = float(np.mean([p[name] for p in per.values()]))
    return out


def finetune_checkpoint(path: str | Path, device: str, shots: int, *, steps: int = 100, lr: float = 1e-3,
                        seed: int = 0, out: str | Path | None = None,
                        data_root: str | None = None) -> dict[str, Any]:
    """Zero-shot (``shots=0``) or K-shot metrics of ``device`` on its HELP evaluation set."""
    ckpt = read_checkpoint(path)
    cfg = copy.deepcopy(ckpt["config"])
    if cfg["task"] != "help-latency":
        raise LedgformerError(f"checkpoint {path} is a {cfg['task']} model; finetune needs a latency model")
    if not device.startswith("help/"):
        raise LedgformerError(f"device '{device}': only HELP cards (help/<key>) have a K-shot protocol here")
    if data_root:
        cfg["data"]["data_root"] = data_root
    cfg["seed"] = seed
    cfg["data"].update(test_devices=[device.split("/", 1)[1]], n_train_archs=0, eval_all=False, shots=shots)
    cfg["train"]["progress"] = False
    set_seed(seed)
    model, data = _restore(ckpt, cfg, path)
    trainer = Trainer(model, data, cfg["train"], seed=seed)
    before, _ = trainer.evaluate(("test",))
    result: dict[str, Any] = {"shots": shots, "zero_shot_spearman": before["test.spearman"],
                              "zero_shot_mape": before["test.mape"]}
    if shots > 0:
        adapt(trainer, model, data.parts["shots"], steps=steps, lr=lr)
        after, _ = trainer.evaluate(("test",))
        result.update(spearman=after["test.spearman"], mape=after["test.mape"],
                      kendall_tau=after["test.kendall_tau"], **{"acc@10%": after["test.acc@10%"]})
        if out:
            save_checkpoint(Path(out) / "model.pt", model, config=cfg, model_name=ckpt["model_name"],
                            model_config=ckpt["model_config"], encoder_id=data.encoder_id,
                            data_version=data.data_version, extra={"finetuned_on": device, "shots": shots})
    if out:
        from ledgformer.train.report import write_metrics_json

        write_metrics_json(result, Path(out) / "metrics.json")
    return result


__all__ = ["adapt", "evaluate_checkpoint", "few_shot_metrics", "finetune_checkpoint"]
