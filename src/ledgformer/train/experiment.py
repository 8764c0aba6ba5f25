"""One experiment end to end: build the task, train (one predictor or an ensemble), evaluate, write.

``ledgformer train`` and every ``ledgformer bench`` run call :func:`run_experiment`; the loop
itself lives in :mod:`ledgformer.train.trainer`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from ledgformer.hardware import card_fingerprints
from ledgformer.model.registry import create_model
from ledgformer.train import report
from ledgformer.train.checkpoint import save_checkpoint
from ledgformer.train.config import save_config
from ledgformer.train.ensemble import fit_ensemble
from ledgformer.train.tasks import build_task
from ledgformer.train.trainer import Trainer, model_kwargs, set_seed


def run_experiment(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build the task, train, select on valid, evaluate, and write everything to ``cfg['out']``.

    Writes ``config.yaml`` (resolved), ``split.json``, ``metrics.json``, ``history.json``,
    ``model.pt`` and PNG plots (test scatter, per-device Spearman bars). Returns the metrics.
    """
    seed = int(cfg["seed"])
    out = Path(cfg["out"] or f"runs/{cfg['config_name']}-seed{seed}")
    cfg = {**cfg, "out": str(out)}
    set_seed(seed)
    t0 = time.time()
    torch.set_num_threads(os.cpu_count() or 1)  # text embedding: big batches, every core helps
    data = build_task(cfg)
    torch.set_num_threads(int(cfg["train"]["threads"]))  # training: small ops, see train.threads
    prep = time.time() - t0
    if cfg.get("ensemble"):  # members trained one by one; the trainer here only evaluates
        name = "ensemble"
        model, kwargs, summary, member_metrics, history = fit_ensemble(cfg, data, seed)
        trainer = Trainer(model, data, cfg["train"], seed=seed)
    else:
        member_metrics = {}
        set_seed(seed)
        name, kwargs = model_kwargs(cfg, data)
        model = create_model(name, **kwargs)
        trainer = Trainer(model, data, cfg["train"], seed=seed)
        summary = trainer.fit()
        history = trainer.history
    metrics, raw = trainer.evaluate()
    metrics.update({f"train.{k}": v for k, v in summary.items()})
    metrics.update(member_metrics)
    metrics["prepare_seconds"] = prep
    metrics["n_params"] = sum(p.numel() for p in model.parameters())
    if trainer.rank == 0:
        save_config(cfg, out / "config.yaml")
        (out / "split.json").write_text(data.split_json + "\n")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        report.write_metrics_json(metrics, out / "metrics.json")
        save_checkpoint(out / "model.pt", model, config=cfg, model_name=name, model_config=kwargs,
                        encoder_id=data.encoder_id, data_version=data.data_version,
                        extra={"devices": data.devices_by_part(), "cards": card_fingerprints(data.devices)})
        if "test" in raw:
            true, pred, groups = raw["test"]
            lat = data.kind == "latency"
            report.scatter_plot(true, pred, out / "test_scatter.png", f"{cfg['config_name']} (test)",
                                log=lat, groups=groups if lat else None)
            if lat:
                per = {k.split(".")[2]: v for k, v in metrics.items()
                       if k.startswith("test.per_device.") and k.endswith(".spearman")}
                report.error_bar_plot(per, out / "test_per_device_spearman.png",
                                      "zero-shot Spearman per test device", "Spearman rho")
    return metrics


__all__ = ["run_experiment"]
