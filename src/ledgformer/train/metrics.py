"""Evaluation metrics for latency and accuracy predictors (numpy in, float out).

Units, fixed once for the whole project:

* ``mape`` and ``rmspe`` are in **percent** (``mape([100, 200], [110, 180]) == 10.0``).
* ``acc_within`` is a **fraction** in [0, 1]; its ``threshold`` is a fraction too (0.1 = 10 %),
  so NNLQP's Acc(10%) is ``acc_within(y, p, 0.10)``.
* ``rmse`` is in the target's own unit (ms for latency, accuracy points for accuracy).
* ``kendall_tau``, ``spearman`` and ``precision_at_topk`` are in [-1, 1] / [0, 1].

Mismatched lengths, empty input, non-finite values and non-positive targets for the relative
metrics raise :class:`MetricInputError`, which is both a ``ValueError`` and a ``LedgformerError``
(so a CLI prints it as one line). Rank correlations are undefined for fewer than two samples or a
constant array: they return NaN rather than a made-up number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ledgformer.errors import LedgformerError

#: the Acc(x%) thresholds of the latency-prediction papers (NNLQP, NAR-Former), as fractions
ACC_THRESHOLDS: tuple[float, ...] = (0.01, 0.05, 0.10)
#: fraction of the population counted as the "top" set in ``regression_report``
TOP_FRACTION = 0.05


class MetricInputError(LedgformerError, ValueError):
    """Targets/predictions that a metric cannot be computed on."""


def check_pair(
    y_true: Any, y_pred: Any, *, positive_true: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 1-D copies of ``y_true`` and ``y_pred`` (raises MetricInputError)."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise MetricInputError(f"y_true has {t.size} values but y_pred has {p.size}; expected equal lengths")
    if t.size == 0:
        raise MetricInputError("empty input: expected at least one (y_true, y_pred) pair")
    for name, arr in (("y_true", t), ("y_pred", p)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise MetricInputError(f"{name} has {bad.size} non-finite values (first at index {bad[0]})")
    if positive_true:
        bad = np.flatnonzero(t <= 0)
        if bad.size:
            raise MetricInputError(
                f"y_true has {bad.size} non-positive values (first {t[bad[0]]!r} at index {bad[0]}); "
                "relative errors need targets > 0"
            )
    return t, p


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, in percent."""
    t, p = check_pair(y_true, y_pred, positive_true=True)
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the target's unit."""
    t, p = check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def rmspe(y_true: Any, y_pred: Any) -> float:
    """Root mean squared percentage error, in percent."""
    t, p = check_pair(y_true, y_pred, positive_true=True)
    return float(np.sqrt(np.mean(((p - t) / t) ** 2)) * 100.0)


def acc_within(y_true: Any, y_pred: Any, threshold: float) -> float:
    """Fraction of samples with ``|pred - true| / true <= threshold`` (threshold as a fraction)."""
    if not threshold > 0:
        raise MetricInputError(f"threshold must be a positive fraction (0.1 = 10%), got {threshold!r}")
    t, p = check_pair(y_true, y_pred, positive_true=True)
    # a tiny tolerance so that 10.0 % counts as "within 10 %" despite float rounding
    return float(np.mean(np.abs(p - t) / t <= threshold + 1e-12))


def _rank_corr(name: str, y_true: Any, y_pred: Any) -> float:
    from scipy import stats  # lazy: scipy.stats costs ~0.6 s of every CLI start (ledgformer predict)

    fn = getattr(stats, name)
    t, p = check_pair(y_true, y_pred)
    if t.size < 2 or np.all(t == t[0]) or np.all(p == p[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(t, p)[0])


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b (ties handled); NaN for < 2 samples or a constant array."""
    return _rank_corr("kendalltau", y_true, y_pred)


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman's rho; NaN for < 2 samples or a constant array."""
    return _rank_corr("spearmanr", y_true, y_pred)


def precision_at_topk(y_true: Any, y_pred: Any, k: int, higher_is_better: bool) -> float:
    """|predicted top-k ∩ true top-k| / k.

    "Top" is the k largest values when ``higher_is_better`` (accuracy) and the k smallest
    otherwise (latency). Ties are broken by index (stable sort) on both sides.
    """
    t, p = check_pair(y_true, y_pred)
    if not 1 <= int(k) <= t.size or int(k) != k:
        raise MetricInputError(f"k must be an integer in [1, {t.size}], got {k!r}")
    sign = -1.0 if higher_is_better else 1.0
    true_top = np.argsort(sign * t, kind="stable")[: int(k)]
    pred_top = np.argsort(sign * p, kind="stable")[: int(k)]
    return float(np.intersect1d(true_top, pred_top).size / int(k))


def regression_report(y_true: Any, y_pred: Any, *, higher_is_better: bool = False) -> dict[str, float]:
    """Every metric at once (units as in the module docstring).

    Keys: ``n``, ``mape``, ``rmse``, ``rmspe``, ``acc@1%``, ``acc@5%``, ``acc@10%``,
    ``kendall_tau``, ``spearman``, ``precision@top5%`` (k = ceil(5 % of n)). The relative metrics
    need targets > 0; for targets that may be zero or negative use the functions one by one.
    """
    t, p = check_pair(y_true, y_pred, positive_true=True)
    k = max(1, math.ceil(TOP_FRACTION * t.size))
    report: dict[str, float] = {
        "n": int(t.size),
        "mape": mape(t, p),
        "rmse": rmse(t, p),
        "rmspe": rmspe(t, p),
    }
    for thr in ACC_THRESHOLDS:
        report[f"acc@{round(thr * 100)}%"] = acc_within(t, p, thr)
    report["kendall_tau"] = kendall_tau(t, p)
    report["spearman"] = spearman(t, p)
    report[f"precision@top{round(TOP_FRACTION * 100)}%"] = precision_at_topk(t, p, k, higher_is_better)
    return report


def grouped_report(
    y_true: Any, y_pred: Any, groups: Sequence[Hashable], *, higher_is_better: bool = False
) -> dict[str, dict[str, float]]:
    """``regression_report`` per group (device, family ...), keyed by ``str(group)``, sorted."""
    t, p = check_pair(y_true, y_pred)
    g = list(groups)
    if len(g) != t.size:
        raise MetricInputError(f"groups has {len(g)} labels but there are {t.size} samples")
    labels = np.asarray([str(x) for x in g])
    return {
        name: regression_report(t[labels == name], p[labels == name], higher_is_better=higher_is_better)
        for name in sorted(set(labels.tolist()))
    }


def device_key(card: str) -> str:
    """A card name as it appears in metric keys: without its registry prefix (``help/titan_rtx_256``
    -> ``titan_rtx_256``, ``mmb/tflite/pixel4|1large|float`` -> ``tflite/pixel4|1large|float``):
    unique within a benchmark, where the last path part alone is not (TFLite vs PyTorch)."""
    return card.split("/", 1)[-1]
