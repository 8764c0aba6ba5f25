"""The training/evaluation loop shared by every predictor (LeDG-Former and the baselines).

AdamW, linear warm-up + cosine decay, early stopping and model selection on the validation part
only, seeded (python, numpy, torch). Runs under ``torchrun`` with DistributedDataParallel: every
rank walks the same shuffled global batches and takes its slice, so the averaged gradient equals
the one-process gradient of the global batch (gloo on CPU, nccl on GPU).

Examples of one graph (the same network on several devices) are kept together in a batch: a
model with ``shares_graphs = True`` encodes each graph once and reads it out per device.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ledgformer.errors import LedgformerError
from ledgformer.model.features import collate
from ledgformer.train.metrics import device_key, grouped_report, mape, regression_report, spearman
from ledgformer.train.tasks import TaskData

#: ``train.select_metric`` values (latency tasks): what the valid score that picks the weights is
SELECT_METRICS = ("spearman", "mape")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dist_setup() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun with > 1 process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def to_model_space(kind: str, y: np.ndarray) -> np.ndarray:
    """Latency is learned as log-ms (relative errors, positive outputs); accuracy as is."""
    return np.log(y) if kind == "latency" else y


def pairwise_rank_loss(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor,
                       margin: float) -> torch.Tensor:
    """Logistic loss on every ordered pair of the same group (device) whose targets differ."""
    diff_y = y[:, None] - y[None, :]
    valid = (diff_y > 0) & (group[:, None] == group[None, :])
    if not valid.any():
        return pred.sum() * 0.0
    diff_p = pred[:, None] - pred[None, :]
    return F.softplus(margin - diff_p[valid]).mean()


class Trainer:
    """Fits ``model`` on ``data.parts['train']``, selects on ``'valid'``, predicts any part."""

    def __init__(self, model: nn.Module, data: TaskData, tcfg: Mapping[str, Any], seed: int = 0) -> None:
        self.data, self.cfg, self.seed = data, dict(tcfg), seed
        if self.cfg.get("select_metric", "spearman") not in SELECT_METRICS:  # closed-form models too
            raise LedgformerError(f"train.select_metric must be one of {', '.join(SELECT_METRICS)}, "
                                  f"got {self.cfg['select_metric']!r}")
        self.rank, self.world = dist_setup()
        self.device = torch.device("cuda", self.rank % torch.cuda.device_count()) \
            if torch.cuda.is_available() else torch.device("cpu")
        self.model = model.to(self.device)
        self.eval_model: nn.Module = self.model  # the weights that are validated (EMA copy if on)
        self.ddp: nn.Module = self.model
        self.closed_form = bool(getattr(model, "closed_form", False))  # fitted once, no gradients
        if self.world > 1 and not self.closed_form:
            self.ddp = nn.parallel.DistributedDataParallel(self.model)
        self.table = data.text_table.to(self.device)
        self.hw = data.hw.to(self.device) if data.hw is not None else None
        self.shares = bool(getattr(model, "shares_graphs", False))
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1

    def use_model(self, model: nn.Module) -> None:
        """Predict and evaluate with ``model`` from now on (K-shot ``params: reference`` wraps the
        trained model in a new one)."""
        self.model = self.eval_model = self.ddp = model.to(self.device)

    # ---- batching ----------------------------------------------------------------------------
    def _forward(self, idx: np.ndarray, module: nn.Module | Callable[..., torch.Tensor]) -> torch.Tensor:
        d = self.data
        rows = d.graph_row[idx]
        hw = None
        if self.hw is not None:
            hw = self.hw.index(torch.as_tensor(d.device_row[idx], device=self.device))
        if self.shares:
            uniq, inv = np.unique(rows, return_inverse=True)
            batch = collate([d.items[r] for r in uniq], self.table).to(self.device)
            return module(batch, hw, graph_index=torch.as_tensor(inv, device=self.device))
        batch = collate([d.items[r] for r in rows], self.table).to(self.device)
        return module(batch, hw)

    def _schedule(self, per_epoch: int) -> tuple[int, int, int]:
        """(epochs, patience, eval_every), stretched by ``train.min_steps`` on small training sets.

        Early stopping on a tiny validation split stops after a handful of steps (N = 78: 2 steps
        an epoch), so small sets get the optimiser steps of a large one instead of its epochs.
        ``per_epoch``: optimiser steps of one epoch.
        """
        c = self.cfg
        epochs, patience, every = int(c["epochs"]), int(c["patience"]), int(c["eval_every"])
        factor = math.ceil(int(c.get("min_steps") or 0) / (epochs * max(1, per_epoch))) if epochs else 0
        if factor <= 1:
            return epochs, patience, every
        return epochs * factor, patience * factor, every * factor

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Global batches of the train part, graphs kept together, same on every rank."""
        train = self.data.parts["train"]
        rng = np.random.default_rng([self.seed, epoch])
        if int(self.cfg.get("batch_graphs") or 0) > 0 and (self.data.device_row[train] >= 0).all():
            return self._grid_batches(train, rng)
        rows = self.data.graph_row[train]
        order_of_graph = rng.permutation(rows.max() + 1)
        order = train[np.lexsort((rng.random(train.size), order_of_graph[rows]))]
        bs = int(self.cfg["batch_size"])
        return [order[i:i + bs] for i in range(0, order.size, bs)]

    def _grid_batches(self, train: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Batches of ``batch_graphs`` graphs x ``batch_size // batch_graphs`` devices (each record
        once per epoch). Graph-sorted batches hold one or two graphs measured on many devices:
        every step then learns about one network, and the per-device rank loss has no pairs. A
        grid encodes few graphs per step yet mixes graphs and gives each device several of them."""
        g_per = int(self.cfg["batch_graphs"])
        d_per = max(1, int(self.cfg["batch_size"]) // g_per)
        graphs, g_inv = np.unique(self.data.graph_row[train], return_inverse=True)
        _, d_inv = np.unique(self.data.device_row[train], return_inverse=True)
        # random windows of 4 groups, sorted by node count inside: a group pads to similar sizes
        sizes = np.asarray([len(self.data.items[g]) for g in graphs])
        perm = rng.permutation(graphs.size)
        grouped = perm[np.lexsort((sizes[perm], np.arange(graphs.size) // (4 * g_per)))]
        slot = np.empty(graphs.size, dtype=np.int64)
        slot[grouped] = np.arange(graphs.size)
        g_grp = slot[g_inv] // g_per
        d_grp = rng.permutation(d_inv.max() + 1)[d_inv] // d_per
        cell = g_grp * (d_grp.max() + 1) + d_grp
        cell_order = rng.permutation(cell.max() + 1)[cell]
        order = np.argsort(cell_order, kind="stable")
        cuts = np.flatnonzero(np.diff(cell_order[order])) + 1
        return [train[part] for part in np.split(order, cuts)]

    # ---- training ----------------------------------------------------------------------------
    def _fit_closed_form(self) -> dict[str, Any]:
        """One ``fit_batches`` pass over the train part (FLOPs scale, GBDT): no epochs, no optimiser."""
        d = self.data
        y_all = to_model_space(d.kind, d.target)

        def batches() -> Any:
            for gb in self._epoch_batches(0):
                hw = None if self.hw is None else self.hw.index(torch.as_tensor(d.device_row[gb]))
                batch = collate([d.items[r] for r in d.graph_row[gb]], self.table)
                yield batch, hw, torch.as_tensor(y_all[gb])

        t0 = time.time()
        self.model.fit_batches(batches())
        elapsed = time.time() - t0
        self.best_epoch = 0
        return {"best_epoch": 0, "epochs_run": 0, "train_seconds": elapsed,
                "train_graphs_per_s": d.parts["train"].size / max(elapsed, 1e-9),
                "best_valid_score": self.valid_score() if d.parts["valid"].size else None}

    def fit(self) -> dict[str, Any]:
        if self.closed_form:
            return self._fit_closed_form()
        if hasattr(self.model, "member_outputs"):  # an ensemble: its members one by one
            from ledgformer.train.ensemble import fit_members

            return fit_members(self)
        d, c = self.data, self.cfg
        y_all = to_model_space(d.kind, d.target)
        y_train = y_all[d.parts["train"]]
        if hasattr(self.model, "set_target_stats"):
            self.model.set_target_stats(float(y_train.mean()), float(y_train.std()))
        loc, scale = float(y_train.mean()), float(max(y_train.std(), 1e-6))
        opt = torch.optim.AdamW(self.model.parameters(), lr=float(c["lr"]),
                                weight_decay=float(c["weight_decay"]))
        ema = None
        if float(c["ema"]) > 0:  # validate/select an exponential moving average of the weights
            ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(float(c["ema"])),
                use_buffers=True)
            self.eval_model = ema.module
        per_epoch = len(self._epoch_batches(0))
        epochs, patience, eval_every = self._schedule(per_epoch)
        steps = epochs * per_epoch
        warm = max(1, int(float(c["warmup_frac"]) * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        best, best_state, bad = -math.inf, None, 0
        select = c.get("select", "best")
        if select not in ("best", "last"):
            raise LedgformerError(f"train.select must be 'best' or 'last', got {select!r}")
        last = select == "last"  # keep the final weights: no early stop on a tiny valid split
        # with select: last the valid part only reports; data.valid_fraction 0 trains on all of it
        has_valid = d.parts["valid"].size > 0
        if not (has_valid or last):
            raise LedgformerError("the validation part is empty: train.select 'best' needs one "
                                  "(set data.valid_fraction > 0, or train.select: last)")
        t0 = time.time()
        limit = float(c["max_minutes"]) * 60 if c.get("max_minutes") else math.inf
        n_seen = 0
        from rich.progress import Progress

        with Progress(transient=False, disable=not c["progress"] or self.rank != 0) as bar:
            task = bar.add_task("training", total=epochs)
            for epoch in range(epochs):
                self.model.train()
                losses = []
                for gb in self._epoch_batches(epoch):
                    idx = np.array_split(gb, self.world)[self.rank]
                    y = torch.as_tensor((y_all[idx] - loc) / scale, dtype=torch.float32, device=self.device)
                    out = (self._forward(idx, self.ddp) - loc) / scale
                    loss = F.huber_loss(out, y, delta=1.0) if c["loss"] == "huber" else F.mse_loss(out, y)
                    if float(c["rank_weight"]) > 0:
                        grp = torch.as_tensor(d.device_row[idx], device=self.device)
                        rank = pairwise_rank_loss(out, y, grp, float(c["rank_margin"]))
                        loss = loss + float(c["rank_weight"]) * rank
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if c["grad_clip"]:
                        nn.utils.clip_grad_norm_(self.model.parameters(), float(c["grad_clip"]))
                    opt.step()
                    sched.step()
                    if ema is not None:
                        ema.update_parameters(self.model)
                    losses.append(loss.item())
                    n_seen += gb.size
                row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.time() - t0}
                if has_valid and ((epoch + 1) % eval_every == 0 or epoch == epochs - 1):
                    row["valid_score"] = self.valid_score()
                    if row["valid_score"] > best or last:
                        best, bad, self.best_epoch = row["valid_score"], 0, epoch
                        if not last:  # "last" takes the final weights once, after the loop
                            best_state = copy.deepcopy(self.eval_model.state_dict())
                    else:
                        bad += eval_every
                self.history.append(row)
                bar.update(task, advance=1, description=f"loss {row['loss']:.4f} valid {best:.4f}")
                if bad >= patience or time.time() - t0 > limit:
                    break
        if last:  # the final weights, with a validation part or without one
            self.best_epoch, best_state = len(self.history) - 1, self.eval_model.state_dict()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.eval_model = self.model
        elapsed = time.time() - t0
        return {"best_epoch": self.best_epoch, "epochs_run": len(self.history), "train_seconds": elapsed,
                "train_graphs_per_s": n_seen / max(elapsed, 1e-9),
                "best_valid_score": best if has_valid else None}

    # ---- prediction and metrics --------------------------------------------------------------
    @torch.no_grad()
    def predict(self, idx: np.ndarray) -> np.ndarray:
        """Predictions in the target's unit (ms or %) for examples ``idx``, in that order."""
        self.eval_model.eval()
        rows = self.data.graph_row[idx]
        order = np.argsort(rows, kind="stable")
        out = np.empty(idx.size)
        bs = int(self.cfg["eval_batch_size"])
        for s in range(0, idx.size, bs):
            part = order[s:s + bs]
            out[part] = self._forward(idx[part], self.eval_model).double().cpu().numpy()
        return np.exp(out) if self.data.kind == "latency" else out

    def valid_score(self) -> float:
        """Higher is better: Kendall tau (accuracy); for latency the mean per-device Spearman rho,
        or minus the MAPE with ``train.select_metric=mape``, on the valid part."""
        idx = self.data.parts["valid"]
        if idx.size == 0:
            raise LedgformerError("the validation part is empty: model selection needs it")
        pred, true = self.predict(idx), self.data.target[idx]
        if self.data.kind == "accuracy":
            return regression_report(true, pred, higher_is_better=True)["kendall_tau"]
        if self.cfg.get("select_metric", "spearman") == "mape":
            return -mape(true, pred)
        groups = np.asarray(self.data.group(idx))
        return float(np.mean([spearman(true[groups == g], pred[groups == g]) for g in np.unique(groups)]))

    def evaluate(self, parts: tuple[str, ...] = ("valid", "holdout", "test", "test_all")
                 ) -> tuple[dict[str, Any], dict]:
        """(flat metrics ``{part}.{metric}``, ``{part}.per_device.{dev}.{metric}``; raw predictions)."""
        metrics: dict[str, Any] = {}
        raw: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        hib = self.data.kind == "accuracy"
        for part in parts:
            idx = self.data.parts.get(part)
            if idx is None or idx.size == 0:
                continue
            t0 = time.time()
            pred, true, groups = self.predict(idx), self.data.target[idx], self.data.group(idx)
            metrics[f"{part}.predict_seconds"] = time.time() - t0
            raw[part] = (true, pred, groups)
            for k, v in regression_report(true, pred, higher_is_better=hib).items():
                metrics[f"{part}.{k}"] = v
            if self.data.kind == "latency":
                macs = self.data.graph_macs[self.data.graph_row[idx]]
                per = grouped_report(true, pred, groups)
                for dev, rep in per.items():
                    name = device_key(dev)
                    for k, v in rep.items():
                        metrics[f"{part}.per_device.{name}.{k}"] = v
                    sel = np.asarray(groups) == dev
                    metrics[f"{part}.per_device.{name}.flops_spearman"] = spearman(true[sel], macs[sel])
                mean_rho = float(np.mean([r["spearman"] for r in per.values()]))
                metrics[f"{part}.mean_device_spearman"] = mean_rho
                families = getattr(self.data, "families", None)  # LatencyTaskData: family per example
                if families is not None:
                    for fam, rep in grouped_report(true, pred, families(idx)).items():
                        metrics.update({f"{part}.per_family.{fam}.{k}": v for k, v in rep.items()})
        return metrics, raw


def model_kwargs(cfg: Mapping[str, Any], data: TaskData) -> tuple[str, dict[str, Any]]:
    """(model name, constructor kwargs): the config's ``model`` keys plus what the data fixes.

    Every model receives ``task``, ``text_dim``, ``hw_text_dim`` and ``use_hardware``.
    """
    m = dict(cfg["model"])
    name = m.pop("name", "ledgformer")
    m.setdefault("task", data.kind)
    m["text_dim"] = int(data.text_table.shape[1])
    m.setdefault("use_hardware", data.hw is not None)
    if data.hw is not None:
        m["hw_text_dim"] = int(data.hw.text.shape[1])
    n_extra = len(data.items[0].extra) if data.items else 0
    if n_extra:  # only then, so models without proxy inputs keep their config keys
        from ledgformer.model.registry import model_defaults

        if "n_extra" not in model_defaults(name):
            raise LedgformerError(f"data.proxies: model '{name}' does not read proxy inputs "
                                  "(the LeDG-Former does)")
        m["n_extra"] = n_extra
    return name, m


__all__ = [
    "Trainer", "dist_setup", "model_kwargs", "pairwise_rank_loss", "set_seed", "to_model_space",
]
