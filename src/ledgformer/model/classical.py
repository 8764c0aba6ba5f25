"""Non-neural baselines: FLOPs-proportional latency (``flops``) and gradient-boosted trees (``gbdt``).

Both are fitted in closed form instead of by gradient descent. They share the trainer-facing API
of :class:`ClosedForm`: ``closed_form = True``, ``features(batch, hw)`` (one row per example),
``fit_features(x, y)``, ``fit(batch, hw, y)`` and ``fit_batches(...)`` (features of a data loader's
batches, then one fit), with ``y`` in model space (log-ms for latency, accuracy otherwise). The
fitted state lives in tensor buffers that take the incoming shapes on ``load_state_dict``, so
checkpoints (``ledgformer.train.checkpoint``) work unchanged. Features are computed on the CPU;
outputs come back on the batch's device.

:func:`static_features` (graph totals, per-op-type counts and cost sums, depth, width) is also the
input of the ``mlp`` baseline for general graphs; :func:`position_encoding` (per-slot op one-hot,
numeric features and adjacency) is the fixed-size encoding of NAS cells for ``mlp`` and ``gbdt``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ledgformer.errors import LedgformerError
from ledgformer.graph.ops import OP_TYPES
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model.features import (
    COST_SUMS,
    GRAPH_FEATURES,
    N_OPS,
    REL,
    Batch,
    HardwareBatch,
    op_totals,
)
from ledgformer.model.registry import PredictorModel, register_model

_RIDGE_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def static_feature_names() -> list[str]:
    """Column names of :func:`static_features` (same order)."""
    names = [f"count_{op}" for op in OP_TYPES]
    for feat, _ in COST_SUMS:
        names += [f"sum_{feat[4:]}_{op}" for op in OP_TYPES]
    return names + [f"graph_{g}" for g in GRAPH_FEATURES] + ["log_depth", "log_width"]


def longest_path_depth(batch: Batch) -> torch.Tensor:
    """Depth of every node (sources 1, padding 0) along the longest parent chain, [B, N].

    Sweeps nodes in index order (graphs are stored topologically, so one sweep suffices) and
    repeats until nothing changes, so permuted node orders are still handled correctly.
    """
    mask = batch.mask
    par = ((batch.rel == REL["parent"]) & mask[:, :, None] & mask[:, None, :]).float()
    depth = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    for _ in range(max(mask.shape[1], 1)):
        before = depth.clone()
        for i in range(mask.shape[1]):
            best = (par[:, i, :] * depth).amax(dim=1)
            depth[:, i] = (best + 1.0) * mask[:, i]
        if torch.equal(before, depth):
            break
    return depth


@torch.no_grad()
def static_features(batch: Batch) -> torch.Tensor:
    """Per-graph static features ``static_feature_names()``, log-scaled to roughly [0, 2]: [B, F].

    Padding nodes are ignored, so a graph gets the same row alone or in a padded batch.
    """
    m = batch.mask.float()
    b, dev = m.shape[0], m.device
    cols = [op_totals(batch).float()]
    depth = longest_path_depth(batch)
    levels = torch.zeros(b, m.shape[1] + 1, device=dev).scatter_add_(1, depth.long(), m)
    width = levels[:, 1:].amax(dim=1)
    cols += [batch.glob.float(), torch.log1p(depth.amax(dim=1, keepdim=True)) / 6.0,
             torch.log1p(width[:, None]) / 6.0]
    return torch.cat(cols, dim=1)


def parent_matrix(batch: Batch) -> torch.Tensor:
    """``A[b, i, j] = 1`` when real node j is a parent of real node i (float, [B, N, N])."""
    real = batch.mask[:, :, None] & batch.mask[:, None, :]
    return ((batch.rel == REL["parent"]) & real).to(batch.num.dtype)


def position_encoding(batch: Batch, max_nodes: int) -> torch.Tensor:
    """Fixed-size cell encoding: per node slot the op one-hot and numeric features, then the
    flattened parent adjacency ("adjacency + op encoding" of NAS cells): [B, max_nodes * (N_OPS +
    len(NODE_FEATURES) + max_nodes)]. Graphs with more than ``max_nodes`` nodes are an error."""
    b, n = batch.op.shape
    k = max_nodes
    if n > k and bool(batch.mask[:, k:].any()):
        raise LedgformerError(f"encoding=position: a graph has more than max_nodes={k} nodes; raise "
                              "model.max_nodes or use encoding: counts")
    m = batch.mask[:, :k, None].to(batch.num.dtype)
    onehot = F.one_hot(batch.op[:, :k], N_OPS).to(batch.num.dtype) * m
    num = batch.num[:, :k] * m
    adj = parent_matrix(batch)[:, :k, :k]
    pad = k - min(n, k)
    onehot, num = F.pad(onehot, (0, 0, 0, pad)), F.pad(num, (0, 0, 0, pad))
    adj = F.pad(adj, (0, pad, 0, pad))
    return torch.cat([onehot.reshape(b, -1), num.reshape(b, -1), adj.reshape(b, -1)], dim=1)


def check_task(task: str) -> str:
    if task not in ("latency", "accuracy"):
        raise LedgformerError(f"model.task must be 'latency' or 'accuracy', got {task!r}")
    return task


class ClosedForm(PredictorModel):
    """Base of the non-gradient baselines (see the module docstring for the trainer API).

    ``text_dim`` / ``hw_text_dim`` are accepted because the trainer passes them to every model;
    these baselines read no texts. ``use_hardware`` (latency only, default on) adds the cards.
    """

    closed_form = True

    def __init__(self, task: str, use_hardware: bool | None, fitted: tuple[str, ...], **cfg: Any) -> None:
        super().__init__()
        self.task = check_task(task)
        self.has_hw = task == "latency" and use_hardware is not False
        self._cfg: dict[str, Any] = {"task": task, "use_hardware": use_hardware, **cfg}
        self._fitted_names = fitted
        for name in fitted:
            self.register_buffer(name, torch.empty(0, dtype=torch.float64))

    def config_dict(self) -> dict[str, Any]:
        return dict(self._cfg)

    @property
    def is_fitted(self) -> bool:
        return getattr(self, self._fitted_names[0]).numel() > 0  # the first one is never empty once fitted

    def _store(self, **arrays: Any) -> None:
        for name, value in arrays.items():
            buf = getattr(self, name)
            setattr(self, name, torch.as_tensor(np.asarray(value)).to(buf.dtype).reshape(np.shape(value)))

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # fitted buffers take the checkpoint's shapes (an unfitted model has empty ones)
        for name in self._fitted_names:
            key = prefix + name
            if key in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[key], device=getattr(self, name).device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _hw(self, hw: HardwareBatch | None) -> HardwareBatch:
        if hw is None:
            raise LedgformerError(f"the {type(self).__name__} latency baseline needs the hardware cards (hw)")
        return hw.to("cpu")

    def features(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        raise NotImplementedError

    def fit_features(self, x: torch.Tensor, y: torch.Tensor) -> None:
        raise NotImplementedError

    def fit(self, batch: Batch, hw: HardwareBatch | None, y: torch.Tensor) -> ClosedForm:
        """Fit on one (possibly large) batch; ``y`` in model space."""
        y64 = torch.as_tensor(y).detach().cpu().double().reshape(-1)
        self.fit_features(self.features(batch, hw), y64)
        return self

    def fit_batches(self, batches: Iterable[tuple[Batch, HardwareBatch | None, torch.Tensor]]) -> ClosedForm:
        """Fit on all ``(batch, hw, y)`` of a loader at once (features per batch, one fit)."""
        xs, ys = [], []
        for batch, hw, y in batches:
            xs.append(self.features(batch, hw))
            ys.append(torch.as_tensor(y).detach().cpu().double().reshape(-1))
        if not xs:
            raise LedgformerError(f"{type(self).__name__}.fit_batches: no training batches")
        self.fit_features(torch.cat(xs), torch.cat(ys))
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise LedgformerError(f"the {type(self).__name__} baseline is not fitted: call fit() first")


def ridge_loo(feat: np.ndarray, target: np.ndarray,
              alphas: Iterable[float] = _RIDGE_ALPHAS) -> tuple[np.ndarray, float]:
    """Ridge ``target ~ feat @ w + w0`` with alpha chosen by leave-one-out over the rows.

    The rows are training devices, few of them: the mean (w = 0) competes as a candidate, so a
    card feature is used only when it predicts a held-out device better than the mean does.
    """
    d = len(target)
    mean = float(target.mean())
    if d < 3:
        return np.zeros(feat.shape[1]), mean
    mu, sd = feat.mean(0), feat.std(0)
    keep = sd > 1e-8
    z = (feat[:, keep] - mu[keep]) / sd[keep]

    def solve(rows: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
        zr, tr = z[rows], target[rows]
        zm, tm = zr.mean(0), tr.mean()
        zc = zr - zm
        w = np.linalg.solve(zc.T @ zc + alpha * np.eye(zc.shape[1]), zc.T @ (tr - tm))
        return w, float(tm - zm @ w)

    def loo(alpha: float | None) -> float:
        err = 0.0
        for k in range(d):
            rows = np.arange(d) != k
            if alpha is None:
                pred = target[rows].mean()
            else:
                w, w0 = solve(rows, alpha)
                pred = z[k] @ w + w0
            err += float(pred - target[k]) ** 2
        return err

    best_err, best_alpha = loo(None), None
    if keep.any():
        for alpha in alphas:
            e = loo(alpha)
            if e < best_err - 1e-12:
                best_err, best_alpha = e, alpha
    w_full = np.zeros(feat.shape[1])
    if best_alpha is None:
        return w_full, mean
    w, w0 = solve(np.arange(d), best_alpha)
    w_full[keep] = w / sd[keep]
    return w_full, w0 - float((w / sd[keep]) @ mu[keep])


def _log_macs(batch: Batch) -> torch.Tensor:
    return batch.glob[:, GRAPH_FEATURES.index("log_macs")].detach().cpu().double() * 20.0


@register_model("flops")
class FlopsBaseline(ClosedForm):
    """``log latency = b * log(MACs) + c_device``, fitted by least squares on the training devices.

    ``slope``: "one" (latency proportional to MACs, b = 1), "shared" (one b for all devices) or
    "per_device". A device is one distinct hardware row (card features + card text); an unseen
    one gets c (and b) from its numeric card features by :func:`ridge_loo` over the training
    devices. Without cards (``use_hardware: false``) or for accuracy: one line
    ``b * log(MACs) + c`` (accuracy always fits b). Ranking by MACs = any positive slope.
    """

    def __init__(self, task: str = "latency", slope: str = "shared", use_hardware: bool | None = None,
                 text_dim: int | None = None, hw_text_dim: int | None = None) -> None:
        super().__init__(task, use_hardware, ("c", "b", "keys", "wc", "c0", "wb", "b0"), slope=slope)
        if slope not in ("one", "shared", "per_device"):
            raise LedgformerError(f"flops.slope must be 'one', 'shared' or 'per_device', got {slope!r}")
        self.slope = slope if task == "latency" else "shared"

    def features(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        """Columns: log MACs, then (with cards) the card features and card text embedding."""
        logm = _log_macs(batch)[:, None]
        if not self.has_hw:
            return logm
        h = self._hw(hw)
        return torch.cat([logm, h.feat.double(), h.text.double()], dim=1)

    def fit_features(self, x: torch.Tensor, y: torch.Tensor) -> None:
        xs, t = x.double().numpy(), y.double().numpy().reshape(-1)
        logm = xs[:, 0]
        if self.has_hw:
            keys, dev = np.unique(xs[:, 1:], axis=0, return_inverse=True)
            dev = dev.reshape(-1)
        else:
            keys, dev = np.zeros((1, 0)), np.zeros(len(t), dtype=np.int64)
        n_dev = len(keys)
        onehot = np.eye(n_dev)[dev]
        if self.slope == "one":
            b = np.ones(n_dev)
            c = (onehot.T @ (t - logm)) / onehot.sum(0)
        elif self.slope == "shared":
            sol = np.linalg.lstsq(np.column_stack([logm, onehot]), t, rcond=None)[0]
            b, c = np.full(n_dev, sol[0]), sol[1:]
        else:
            b, c = np.zeros(n_dev), np.zeros(n_dev)
            for k in range(n_dev):
                rows = dev == k
                b[k], c[k] = np.linalg.lstsq(np.column_stack([logm[rows], np.ones(rows.sum())]),
                                             t[rows], rcond=None)[0]
        card = keys[:, : len(FEATURE_NAMES)]
        wc, c0 = ridge_loo(card, c) if self.has_hw else (np.zeros(0), float(c[0]))
        wb, b0 = ridge_loo(card, b) if self.has_hw and self.slope == "per_device" else \
            (np.zeros(card.shape[1]), float(b.mean()))
        self._store(keys=keys, b=b, c=c, wc=wc, c0=[c0], wb=wb, b0=[b0])

    def coefficients(self, batch: Batch, hw: HardwareBatch | None = None) -> tuple[torch.Tensor, ...]:
        """Per-example slope b and offset c (seen devices: their fit; unseen: from the card), CPU."""
        self._check_fitted()
        b_fit, c_fit, keys = self.b.cpu(), self.c.cpu(), self.keys.cpu()
        if not self.has_hw:
            n = len(batch)
            return b_fit[:1].expand(n), c_fit[:1].expand(n)
        x = self.features(batch, hw)
        key, card = x[:, 1:], x[:, 1: 1 + len(FEATURE_NAMES)]
        if key.shape[1] != keys.shape[1]:
            raise LedgformerError(f"flops baseline: hardware rows have {key.shape[1]} values, the fit had "
                                  f"{keys.shape[1]} (different card encoder?)")
        b = self.b0.cpu() + card @ self.wb.cpu()
        c = self.c0.cpu() + card @ self.wc.cpu()
        match = (key[:, None, :] - keys[None]).abs().amax(-1) < 1e-6  # [B, D]: a training device
        seen, idx = match.any(1), match.double().argmax(1)
        return torch.where(seen, b_fit[idx], b), torch.where(seen, c_fit[idx], c)

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        b, c = self.coefficients(batch, hw)
        return (b * _log_macs(batch) + c).float().to(batch.op.device)


@register_model("gbdt")
class GBDTBaseline(ClosedForm):
    """LightGBM regression on :func:`static_features` (or :func:`position_encoding` for cells,
    ``encoding: position``) + the numeric card features for latency.

    ``residual``: fit ``y - log(MACs)`` instead of ``y`` (trees cannot extrapolate, and latency
    is nearly proportional to MACs); the prediction adds log(MACs) back.
    """

    def __init__(self, task: str = "latency", encoding: str = "counts", max_nodes: int = 8,
                 n_estimators: int = 500, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 10, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 0.0, residual: bool = False, seed: int = 0, n_jobs: int = 1,
                 use_hardware: bool | None = None, text_dim: int | None = None,
                 hw_text_dim: int | None = None) -> None:
        self.params: dict[str, Any] = {
            "n_estimators": n_estimators, "learning_rate": learning_rate, "num_leaves": num_leaves,
            "min_child_samples": min_child_samples, "subsample": subsample, "subsample_freq": 1,
            "colsample_bytree": colsample_bytree, "reg_lambda": reg_lambda, "random_state": seed,
            "n_jobs": n_jobs, "verbose": -1,
        }
        super().__init__(task, use_hardware, ("booster",), encoding=encoding, max_nodes=max_nodes,
                         residual=residual, **self.params)
        if encoding not in ("counts", "position"):
            raise LedgformerError(f"gbdt.encoding must be 'counts' or 'position', got {encoding!r}")
        self.encoding, self.max_nodes, self.residual = encoding, max_nodes, residual
        self.booster = torch.empty(0, dtype=torch.uint8)
        self._parsed: tuple[tuple[int, int], Any] | None = None  # (buffer identity, lightgbm.Booster)

    def features(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        """The graph encoding, then log(MACs) (for ``residual``), then (latency) the card features."""
        cpu = batch.to("cpu")
        x = static_features(cpu) if self.encoding == "counts" else position_encoding(cpu, self.max_nodes)
        cols = [x.float(), _log_macs(cpu).float()[:, None]]
        if self.has_hw:
            cols.append(self._hw(hw).feat.float())
        return torch.cat(cols, dim=1)

    def _offset(self, x: torch.Tensor) -> np.ndarray:
        width = x.shape[1] - (len(FEATURE_NAMES) if self.has_hw else 0) - 1
        return x[:, width].double().numpy() if self.residual else np.zeros(len(x))

    def _booster(self) -> Any:
        """The lightgbm Booster of the ``booster`` buffer, parsed once per fitted/loaded model."""
        import lightgbm

        ident = (self.booster.data_ptr(), self.booster.numel())
        if self._parsed is None or self._parsed[0] != ident:
            self._parsed = ident, lightgbm.Booster(model_str=bytes(self.booster.cpu().numpy()).decode())
        return self._parsed[1]

    def fit_features(self, x: torch.Tensor, y: torch.Tensor) -> None:
        import lightgbm

        reg = lightgbm.LGBMRegressor(**self.params)
        reg.fit(x.float().numpy(), y.double().numpy().reshape(-1) - self._offset(x))
        text = reg.booster_.model_to_string().encode()
        self.booster = torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()

    def forward(self, batch: Batch, hw: HardwareBatch | None = None) -> torch.Tensor:
        self._check_fitted()
        x = self.features(batch, hw)
        pred = self._booster().predict(x.float().numpy()) + self._offset(x)
        return torch.as_tensor(pred, dtype=torch.float32, device=batch.op.device)


__all__ = [
    "ClosedForm", "FlopsBaseline", "GBDTBaseline", "check_task", "longest_path_depth", "parent_matrix",
    "position_encoding", "ridge_loo", "static_feature_names", "static_features",
]
