"""``Predictor.fit`` / ``adapt``: user (arch, target[, card]) examples -> a ``TaskData`` -> the
shared Trainer, or the K-shot recipe of ``ledgformer.train.recipes``.

The same training loop as ``ledgformer train`` (AdamW, warm-up + cosine, selection on a held-out
part), so a model fitted from Python behaves like one trained from a config; and the same K-shot
adaptation the benchmark suites score, so a device adapted from Python behaves like their numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ledgformer.api.batching import Featurizer
from ledgformer.api.inputs import ModelRef
from ledgformer.errors import LedgformerError
from ledgformer.hardware import HardwareCard
from ledgformer.train.tasks import TaskData

#: a held-out validation part smaller than this many graphs ranks too few to select an epoch:
#: then selection uses the training data
MIN_VALID_GRAPHS = 5


def train_config(train: Mapping[str, Any]) -> dict[str, Any]:
    """The training defaults of ``ledgformer train`` with ``train`` applied (unknown keys: error)."""
    from ledgformer.train.config import DEFAULTS

    tcfg = copy.deepcopy(DEFAULTS["train"])
    unknown = sorted(set(train) - set(tcfg))
    if unknown:
        raise LedgformerError(f"fit: unknown training option(s) {unknown}; known: {', '.join(sorted(tcfg))}")
    tcfg["progress"] = False  # a library call: quiet unless asked
    tcfg.update(train)
    return tcfg


def build_data(feat: Featurizer, refs: Sequence[ModelRef], y: np.ndarray, cards: list[HardwareCard] | None,
               kind: str, valid_fraction: float, seed: int) -> TaskData:
    """Examples as a ``TaskData``: one row per unique graph, one per unique card, a graph-level split."""
    if kind == "latency" and not np.all(y > 0):
        raise LedgformerError("fit: latency targets must be positive milliseconds")
    if not np.all(np.isfinite(y)):
        raise LedgformerError("fit: targets must be finite numbers")
    keys = list(dict.fromkeys(r.key for r in refs))
    row_of = {k: i for i, k in enumerate(keys)}
    first = {r.key: r for r in reversed(refs)}
    graphs = [first[k].graph() for k in keys]
    items = feat.with_proxies(feat.tensors(graphs), [first[k] for k in keys])
    graph_row = np.asarray([row_of[r.key] for r in refs])
    hw, devices, device_row = None, [], np.full(len(refs), -1)
    if cards is not None:
        ids = {}
        for c in cards:
            ids.setdefault((c.name, c.to_text(), c.features().tobytes()), c)
        uniq = list(ids.values())
        devices = [c.name for c in uniq]
        index = {k: i for i, k in enumerate(ids)}
        device_row = np.asarray([index[(c.name, c.to_text(), c.features().tobytes())] for c in cards])
        hw = feat.hardware(uniq)
    n_graphs = len(keys)
    order = np.random.default_rng(seed).permutation(n_graphs)
    n_valid = round(valid_fraction * n_graphs)
    n_valid = n_valid if n_valid >= MIN_VALID_GRAPHS else 0
    valid_graphs = set(order[:n_valid].tolist())
    is_valid = np.asarray([g in valid_graphs for g in graph_row])
    examples = np.arange(len(refs))
    train_part = examples[~is_valid]
    parts = {"train": train_part, "valid": examples[is_valid] if n_valid else train_part}
    return TaskData(
        kind=kind, items=items, graph_ids=keys, text_table=feat.table(), graph_row=graph_row,
        device_row=device_row, target=y, devices=devices, hw=hw, parts=parts, encoder_id=feat.encoder.id,
        graph_macs=np.asarray([g.macs for g in graphs], np.float64),
        data_version={"benchmark": "user", "n_records": len(refs), "n_graphs": n_graphs},
    )


def fit_model(model: torch.nn.Module, feat: Featurizer, refs: Sequence[ModelRef], y: np.ndarray,
              cards: list[HardwareCard] | None, *, kind: str, valid_fraction: float, seed: int,
              train: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit ``model`` in place; returns (the training config used, the trainer's summary)."""
    from ledgformer.train.trainer import Trainer, set_seed

    if not 0 <= valid_fraction < 1:
        raise LedgformerError(f"fit: valid_fraction must be in [0, 1), got {valid_fraction}")
    if len(refs) < 2:
        raise LedgformerError("fit: need at least 2 examples")
    tcfg = train_config(train)
    data = build_data(feat, refs, y, cards, kind, valid_fraction, seed)
    set_seed(seed)
    summary = Trainer(model, data, tcfg, seed=seed).fit()
    return tcfg, summary


def adapt_model(model: torch.nn.Module, feat: Featurizer, refs: Sequence[ModelRef], y: np.ndarray,
                card: HardwareCard, config: Mapping[str, Any], *, seed: int, recipe: Mapping[str, Any],
                references: Sequence[str] = ()) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Adapt ``model`` to ``card`` from its measured latencies ``y`` (ms) of ``refs`` with the K-shot
    recipe: ``config``'s ``finetune`` section, ``recipe`` overriding its keys; ``references``: the
    cards ``params: reference`` mixes (the predictor's training devices). Returns (the adapted model:
    ``model``, changed in place, or a blend around it; what was done: K, the recipe, the ``keep``
    (and, for a list of ``params``, the ``params``) the samples chose, the MAPE on the samples
    before and after (in-sample: it shows the fit, not the error on other networks))."""
    from ledgformer.api.inputs import resolve_cards
    from ledgformer.train.config import DEFAULTS, finetune_params, finetune_settings, merge
    from ledgformer.train.metrics import mape
    from ledgformer.train.recipes import adapt
    from ledgformer.train.trainer import Trainer, set_seed

    ft = finetune_settings(config, **recipe)  # a bad key or value: a ConfigError naming it
    if len(refs) < 2:
        raise LedgformerError("adapt: need at least 2 measured networks")
    mixed = None
    if "reference" in finetune_params(ft):
        if not references:
            raise LedgformerError("adapt: params=reference mixes the predictor's training devices, but "
                                  "this predictor records none (Predictor.devices['train'])")
        mixed = (list(references), feat.hardware(resolve_cards(list(references))[0]))
    data = build_data(feat, refs, y, [card] * len(refs), "latency", 0.0, seed)
    tcfg = merge(DEFAULTS["train"], config.get("train") or {})
    tcfg["progress"] = False
    set_seed(seed)
    trainer = Trainer(model, data, tcfg, seed=seed)
    idx = data.parts["train"]

    before = mape(y[idx], trainer.predict(idx))
    original = copy.deepcopy(model.state_dict())
    adapted, chosen, chosen_params = adapt(trainer, model, idx, ft, mixed)
    pred = trainer.predict(idx)
    if not np.all(np.isfinite(pred)):  # diverged: give the user back the predictor they had
        model.load_state_dict(original)
        raise LedgformerError(f"adapt: the fine-tuned model predicts non-finite latencies on {card.name} "
                              f"(recipe {dict(ft)}); the weights were left as they were. Try a lower "
                              "finetune lr, fewer steps or params=scale")
    return adapted, {"hardware": card.name, "n": len(refs), "recipe": ft, "keep": chosen,
                     **({} if chosen_params is None else {"params": chosen_params}),
                     "sample_mape_before": before, "sample_mape_after": mape(y[idx], pred)}


__all__ = ["MIN_VALID_GRAPHS", "adapt_model", "build_data", "fit_model", "train_config"]
