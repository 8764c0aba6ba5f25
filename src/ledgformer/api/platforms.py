"""How far a queried device is from what a latency predictor was trained and tested on.

``nearest_platforms``: the predictor's training devices ranked by similarity to the queried card
(mean of the cosine similarity of the card text embeddings, which the model reads, and of the
numeric card features). ``measured_error``: the predictor's measured test metrics for that kind of
hardware (its test devices of the same ``kind``), else over all its test devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ledgformer.api.batching import Featurizer
from ledgformer.errors import LedgformerError
from ledgformer.hardware import HardwareCard, load_card
from ledgformer.train.metrics import device_key

#: per-device metrics shown for latency predictors; overall metrics for accuracy predictors
LATENCY_METRICS = ("mape", "spearman", "kendall_tau")
ACCURACY_METRICS = ("kendall_tau", "spearman", "mape", "rmse")


def _cards(names: Sequence[str]) -> list[HardwareCard]:
    """Cards of the names that still resolve (a user card file may be gone: skip it)."""
    out = []
    for name in names:
        try:
            out.append(load_card(name))
        except LedgformerError:
            continue
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b


def nearest_platforms(feat: Featurizer, card: HardwareCard, train_devices: Sequence[str],
                      k: int = 3) -> list[dict[str, Any]]:
    """Up to ``k`` training devices, most similar first, with the two cosine similarities."""
    cards = _cards(train_devices)
    if not cards:
        return []
    text = _cosine(feat.card_vectors(cards), feat.card_vectors([card])[0])
    num = _cosine(np.stack([c.features() for c in cards]), card.features())
    sim = (text + num) / 2
    order = np.argsort(-sim, kind="stable")[:k]
    return [{"card": cards[i].name, "similarity": float(sim[i]), "text_cosine": float(text[i]),
             "feature_cosine": float(num[i])} for i in order]


def _pick(metrics: Mapping[str, Any], prefix: str, names: Sequence[str]) -> dict[str, float]:
    return {m: float(metrics[f"{prefix}{m}"]) for m in names if metrics.get(f"{prefix}{m}") is not None}


def measured_error(metrics: Mapping[str, Any], task: str, card: HardwareCard | None,
               test_devices: Sequence[str]) -> dict[str, Any] | None:
    """The predictor's measured test error that applies to ``card`` (None without metrics)."""
    if not metrics:
        return None
    if task != "latency" or card is None:
        values = _pick(metrics, "test.", ACCURACY_METRICS if task != "latency" else LATENCY_METRICS)
        n = metrics.get("test.n")
        return {"scope": f"{int(n):,} test examples" if n else "test set", "metrics": values}
    per = {}
    for name in test_devices:
        values = _pick(metrics, f"test.per_device.{device_key(name)}.", LATENCY_METRICS)
        if values:
            per[name] = values
    if card.name in per:
        return {"scope": f"{card.name} is one of the predictor's test devices", "metrics": per[card.name],
                "devices": {card.name: per[card.name]}}
    kinds = {c.name: c.kind for c in _cards(list(per))}
    same = {n: v for n, v in per.items() if kinds.get(n) == card.kind}
    if same:
        mean = {m: float(np.mean([v[m] for v in same.values() if m in v]))
                for m in LATENCY_METRICS if any(m in v for v in same.values())}
        return {"scope": f"mean over its {len(same)} unseen test device(s) of kind {card.kind}",
                "metrics": mean, "devices": same}
    overall = _pick(metrics, "test.", ("mape",))
    if metrics.get("test.mean_device_spearman") is not None:
        overall["spearman"] = float(metrics["test.mean_device_spearman"])
    return {"scope": f"all test devices (none of kind {card.kind})", "metrics": overall, "devices": per}


__all__ = ["measured_error", "nearest_platforms"]
