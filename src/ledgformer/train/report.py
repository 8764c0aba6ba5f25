"""Evaluation plots (PNG) and metric files.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend
switch), so this works headless and from several threads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps, ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ledgformer.train.metrics import MetricInputError, check_pair

#: significant digits kept in metric files (enough for MAPE 3.4821 % or tau 0.91234)
SIGNIFICANT_DIGITS = 6
_MAX_LEGEND = 20


def _new_figure(width: float = 5.5, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _log_locator(lo: float, hi: float) -> ticker.Locator:
    """Plain-number ticks for a log axis: matplotlib's default labels the minor ticks of a narrow
    range as overlapping "3x10^0" strings, and puts a single tick on a range under a decade."""
    decades = math.log10(hi / lo)
    if decades < 1:
        return ticker.MaxNLocator(nbins=5)
    return ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,))


def scatter_plot(
    y_true: Any, y_pred: Any, path: str | Path, title: str, log: bool = True,
    groups: Sequence[Hashable] | None = None, xlabel: str = "measured", ylabel: str = "predicted",
) -> Path:
    """Predicted vs measured with the y = x line; one colour per group (device, family ...)."""
    t, p = check_pair(y_true, y_pred)
    if log and (np.any(t <= 0) or np.any(p <= 0)):
        raise MetricInputError("log-scale scatter needs positive values; use log=False")
    labels = None if groups is None else np.asarray([str(g) for g in groups])
    if labels is not None and labels.size != t.size:
        raise MetricInputError(f"groups has {labels.size} labels but there are {t.size} samples")
    fig = _new_figure()
    ax = fig.add_subplot()
    size = 4 if t.size > 2000 else 12
    if labels is None:
        ax.scatter(t, p, s=size, alpha=0.5, linewidths=0)
    else:
        names = sorted(set(labels.tolist()))
        cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
        for i, name in enumerate(names):
            m = labels == name
            ax.scatter(t[m], p[m], s=size, alpha=0.6, linewidths=0, color=cmap(i % cmap.N), label=name)
        if len(names) <= _MAX_LEGEND:
            ax.legend(fontsize=7, markerscale=2, loc="upper left", frameon=False)
    lo = float(min(t.min(), p.min()))
    hi = float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="_y=x")
    if log:
        for axis, setter in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
            setter("log")
            axis.set_major_locator(_log_locator(lo, hi))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    return _save(fig, path)


def error_bar_plot(per_group: Mapping[str, float], path: str | Path, title: str, ylabel: str) -> Path:
    """One bar per group (device, family), in the given order, labelled with its value."""
    if not per_group:
        raise MetricInputError("error_bar_plot: per_group is empty")
    names = [str(k) for k in per_group]
    values = [float(v) for v in per_group.values()]
    fig = _new_figure(width=max(4.0, 0.45 * len(names) + 1.5), height=4.0)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(names)), [0.0 if math.isnan(v) else v for v in values], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def _rounded(value: Any) -> Any:
    """JSON-ready copy: floats to SIGNIFICANT_DIGITS, NaN/inf to None, numpy scalars to Python."""
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_rounded(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return None
        return float(f"{v:.{SIGNIFICANT_DIGITS}g}")
    return value


def write_metrics_json(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Metrics (nested dicts allowed) as JSON: sorted keys, 6 significant digits, NaN as null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(metrics), indent=2, sort_keys=True) + "\n")
    return path
