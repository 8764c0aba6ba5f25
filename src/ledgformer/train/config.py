"""Run configs: a YAML file plus ``key=value`` overrides, resolved against the defaults.

``ledgformer train --config configs/NAME.yaml seed=1 model.d_model=32 out=runs/x`` loads the
file, applies each override (dotted keys; values parsed as YAML, so ``1e-3``, ``true``, ``[1, 2]``
work), and checks every key against :data:`DEFAULTS` (unknown keys are an error that names the
key: a typo must never be silently ignored). The resolved config is saved in the run folder.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ledgformer.errors import LedgformerError

#: every known key with its default; ``model`` is free-form (checked by the model's own config)
DEFAULTS: dict[str, Any] = {
    "config_name": None,  # the config file's stem (set on load)
    "task": "nb201-accuracy",  # accuracy (= nb201-accuracy) | help-latency | latency
    "seed": 0,
    "out": None,  # run folder (default runs/<config name>-seed<S>)
    "data": {
        "benchmark": "nb201-cifar10",
        "data_root": None,
        "n_train": 781,  # nb201-accuracy: labelled archs (valid drawn from them)
        "valid_fraction": 0.1,
        # NB201 accuracy: ops that cannot change the cell output become 'none' in the cell graph,
        # so functionally identical cells share one graph (spaces.nb201.live_arch)
        "live_cells": False,
        # NB201 accuracy: false drops the edges of 'none' ops from the cell graph, so its wiring
        # (the model's structural relations, degrees) follows the real data flow of each arch
        "none_edges": True,
        # accuracy tasks, design studies: this many archs drawn (seeded) from the test pool form a
        # "holdout" part that is scored (holdout.*) but never used for selection, and leave test;
        # it compares choices that the valid split cannot (e.g. train.select, whose "best" valid
        # score is the max over evaluations). 0: none (the published protocol)
        "holdout": 0,
        # NB201 accuracy: zero-cost proxies (spaces.proxies, e.g. [synflow]) the model reads as
        # graph-level inputs beside its cell graph; computed from the arch alone, no training
        "proxies": [],
        "train_devices": None,  # help-latency: default HELP's device split
        "valid_devices": None,
        "test_devices": None,
        "n_train_archs": 3000,  # help-latency: archs per training device (outside the eval range)
        "eval_all": True,  # help-latency: also evaluate every arch on the test devices
        "shots": 0,  # help-latency: K measured archs per test device from HELP's pool (part "shots")
        "shots_part": "test",  # help-latency: whose K archs: test | valid devices (recipe choice)
        # latency: data.benchmark is a name or a list ("embedded" = the data set in the package)
        "split": "family",  # latency: family | device | random (graph-level, seeded)
        "test_family": None,  # latency, split=family: the held-out family
        "valid_family": None,  # latency, split=family: a validation family (None: valid_fraction of train)
        "test_device": None,  # latency, split=device: the held-out card (zero-shot)
        # latency, split=device: validate on every record of these cards (a glob too), not trained
        # on, so model selection and design studies see an unseen device as the test does
        # (None: valid_fraction of the networks on the training devices)
        "valid_device": None,
        "test_fraction": 0.2,  # latency, split=random: fraction of the graphs in test
        "devices": None,  # latency: keep only these cards, names or globs (None: all)
        # latency: leave these families out of the data entirely (design studies judged on a
        # family the suite tests elsewhere, with as many training families as the suite has)
        "drop_families": None,
        "max_graphs": None,  # latency: a seeded, family-balanced subset of the graphs (quick runs)
    },
    "features": {"encoder": "minilm"},
    "model": {"name": "ledgformer"},
    "train": {
        "epochs": 100,
        "batch_size": 64,
        # > 0 (latency tasks): batches of batch_graphs graphs x batch_size // batch_graphs devices
        # instead of consecutive records of one graph (see Trainer._grid_batches)
        "batch_graphs": 0,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "warmup_frac": 0.05,
        "patience": 30,  # epochs without a better validation score before stopping
        # > 0: when epochs x batches per epoch is fewer optimiser steps than this (small training
        # sets), epochs, patience and eval_every are stretched by the same factor, so a 78-arch set
        # trains, and waits before stopping, as many steps as a large one
        "min_steps": 0,
        "loss": "mse",  # mse | huber
        "rank_weight": 0.0,  # weight of the pairwise ranking loss
        "rank_margin": 0.0,
        "grad_clip": 1.0,
        # "best": keep the weights of the best validation score and stop after `patience`;
        # "last": train every epoch and keep the final weights (a valid split of 8-10 archs picks
        # a lucky early epoch as often as a good one); valid is still evaluated and reported
        "select": "best",
        "ema": 0.0,  # > 0: decay of an exponential moving average of the weights, used for selection
        # what "best" means on the valid part of a latency task: "spearman" (mean per-device rho:
        # ranking only) or "mape" (absolute error; where the latency itself is the answer, as in
        # zero-shot on an unseen phone). Accuracy tasks always select on Kendall tau.
        "select_metric": "spearman",
        "eval_every": 1,
        "eval_batch_size": 256,
        "threads": 2,
        "max_minutes": None,  # wall-clock cap of the training loop
        "progress": True,
    },
    # a list: train one predictor per entry (alone, member i with seed + 1000 i) and predict their
    # mean (model "ensemble"). An entry overrides the run's ``model`` (replaced when it names
    # another model, else merged) and ``train`` sections; ``{}`` is the run's own model. Data and
    # features are shared by all members. []: a single model
    "ensemble": [],
    # K-shot adaptation of a help-latency checkpoint (``ledgformer finetune``, bench ``shots``)
    "finetune": {
        "steps": 100,  # full-batch AdamW steps on the K samples (no validation data)
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "loss": "mse",  # mse (log latency) | mse+rank (plus rank_weight x the pairwise rank loss)
        "rank_weight": 1.0,
        "params": "all",  # all | readout (card token + heads) | roofline (throughputs P, B, overhead O)
        # | scale (log-latency scale + shift) | reference (a fitted mix of the training devices' predictions).
        # A list: each device chooses among them (and the keep values) by cross-validation on its K samples
        # share of the zero-shot weights kept after fine-tuning (weight-space ensembling, WiSE-FT):
        # weights = keep * before + (1 - keep) * after; 0: the fine-tuned weights as they are.
        # A list: each device chooses among them by cross-validation on its own K samples
        "keep": 0.0,
        "folds": 2,  # folds of that cross-validation
    },
}

FINETUNE_LOSSES = ("mse", "mse+rank")
FINETUNE_PARAMS = ("all", "readout", "roofline", "scale", "reference")
#: ``finetune.params`` values that move no weight (``keep`` does not apply to them)
UNTRAINED_PARAMS = ("scale", "reference")


class ConfigError(LedgformerError, ValueError):
    """A config file or override that cannot be used."""


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string: numbers win
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check(cfg: Mapping[str, Any], ref: Mapping[str, Any], where: str) -> None:
    for key, value in cfg.items():
        path = f"{where}{key}"
        if key not in ref:
            raise ConfigError(f"unknown config key '{path}'; known here: {', '.join(sorted(ref))}")
        if isinstance(ref[key], dict) and key != "model":
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
            _check(value, ref[key], path + ".")


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        nested = isinstance(v, Mapping) and isinstance(out.get(k), dict)
        out[k] = merge(out[k], v) if nested else copy.deepcopy(v)
    return out


def apply_overrides(cfg: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings (value parsed as YAML) to a copy of ``cfg``."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{p}' is not a mapping")
        node[parts[-1]] = _parse_value(raw)
    return out


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file -> {}), with errors that name the file."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def finetune_params(ft: Mapping[str, Any]) -> list[str]:
    """The ``params`` values of a checked ``finetune`` section as a list (one, or those to choose among)."""
    return list(ft["params"]) if isinstance(ft["params"], list) else [ft["params"]]


def finetune_settings(cfg: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """A run config's ``finetune`` section (defaults for configs that predate it) with the
    non-None ``overrides`` applied, checked: values are typed, a bad loss or mode names itself."""
    ft = merge(DEFAULTS["finetune"], cfg.get("finetune") or {})
    ft.update({k: v for k, v in overrides.items() if v is not None})
    _check(ft, DEFAULTS["finetune"], "finetune.")
    for key in ("keep", "params"):
        if isinstance(ft[key], (list, tuple)) and len(ft[key]) == 1:
            ft[key] = ft[key][0]  # one value: fixed, nothing to choose
    params = list(ft["params"]) if isinstance(ft["params"], (list, tuple)) else [ft["params"]]
    if ft["loss"] not in FINETUNE_LOSSES:
        raise ConfigError(f"finetune.loss must be one of {', '.join(FINETUNE_LOSSES)}, got {ft['loss']!r}")
    if not params or not all(isinstance(p, str) and p in FINETUNE_PARAMS for p in params) \
            or len(set(params)) < len(params):
        raise ConfigError(f"finetune.params must be one of {', '.join(FINETUNE_PARAMS)} (or a list of "
                          f"distinct such), got {ft['params']!r}")
    several = isinstance(ft["keep"], (list, tuple))
    try:
        out = {"steps": int(ft["steps"]), "lr": float(ft["lr"]), "weight_decay": float(ft["weight_decay"]),
               "loss": ft["loss"], "rank_weight": float(ft["rank_weight"]),
               "params": params if len(params) > 1 else params[0],
               "keep": [float(k) for k in ft["keep"]] if several else float(ft["keep"]),
               "folds": int(ft["folds"])}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"finetune: steps, lr, weight_decay, rank_weight, folds must be numbers, keep a "
                          f"number or a list of numbers ({err})") from err
    keeps = out["keep"] if several else [out["keep"]]
    if not keeps or not all(0.0 <= k < 1.0 for k in keeps):
        raise ConfigError(f"finetune.keep must be in [0, 1) (or a non-empty list of such), "
                          f"got {ft['keep']!r}")
    if any(keeps) and all(p in UNTRAINED_PARAMS for p in params):
        raise ConfigError(f"finetune.keep applies to trained weights; params={out['params']} trains none "
                          "(set keep: 0)")
    if (several or len(params) > 1) and out["folds"] < 2:
        raise ConfigError(f"finetune.folds must be >= 2 to choose among params {out['params']} / keep "
                          f"{out['keep']}, got {out['folds']}")
    if out["steps"] < 0 or out["lr"] <= 0:
        raise ConfigError(f"finetune: steps must be >= 0 and lr > 0, got {out['steps']} and {out['lr']}")
    return out


def ensemble_members(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The resolved run config of each ``ensemble`` member (``ensemble: []`` in each), checked:
    a member may set only ``model`` and ``train`` keys, and its train keys must exist."""
    entries = cfg.get("ensemble") or []
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"ensemble must be a list of member overrides, got {entries!r}")
    members = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"ensemble member {i} must be a mapping (e.g. {{}} or "
                              f"{{model: {{name: gin}}}}), got {entry!r}")
        extra = sorted(set(entry) - {"model", "train"})
        if extra:
            raise ConfigError(f"ensemble member {i}: only 'model' and 'train' can differ between members "
                              f"(data and features are shared), got {', '.join(extra)}")
        model, train = entry.get("model") or {}, entry.get("train") or {}
        if not isinstance(model, Mapping) or not isinstance(train, Mapping):
            raise ConfigError(f"ensemble member {i}: 'model' and 'train' must be mappings")
        _check(train, DEFAULTS["train"], f"ensemble[{i}].train.")
        own = cfg["model"].get("name", "ledgformer")
        replaced = model.get("name", own) != own
        members.append({**copy.deepcopy(dict(cfg)), "ensemble": [],
                        "model": copy.deepcopy(dict(model)) if replaced else merge(cfg["model"], model),
                        "train": merge(cfg["train"], train)})
    if any(m["model"].get("name") == "ensemble" for m in members):
        raise ConfigError("ensemble: a member cannot itself be model 'ensemble'")
    return members


def _check_grid_batches(cfg: Mapping[str, Any]) -> None:
    """``train.batch_graphs`` mixes graphs and devices in a batch: it needs devices (a latency task)
    and at most ``batch_size`` graphs; otherwise it would be ignored, so it is an error."""
    g, bs = cfg["train"]["batch_graphs"], cfg["train"]["batch_size"]
    if isinstance(g, bool) or not isinstance(g, int) or g < 0:
        raise ConfigError(f"train.batch_graphs must be an integer >= 0 (0 = off), got {g!r}")
    if g and "latency" not in str(cfg["task"]):
        raise ConfigError(f"train.batch_graphs={g} groups graphs x devices and applies to latency tasks "
                          f"only; task {cfg['task']!r} has one target per graph: remove it")
    if g and isinstance(bs, int) and g > bs:
        raise ConfigError(f"train.batch_graphs={g} exceeds train.batch_size={bs}: a batch holds "
                          "batch_graphs graphs x batch_size // batch_graphs devices")


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Defaults <- YAML file <- overrides, checked; ``config_name`` records the file stem."""
    file_cfg: dict[str, Any] = {}
    name = "default"
    if path is not None:
        path = Path(path)
        file_cfg = read_yaml_mapping(path, "config file")
        name = path.stem
    user = apply_overrides(file_cfg, overrides)
    _check(user, DEFAULTS, "")
    cfg = merge(DEFAULTS, user)
    finetune_settings(cfg)
    for member in [cfg, *ensemble_members(cfg)]:
        _check_grid_batches(member)
    if cfg["config_name"] is None:
        cfg["config_name"] = name
    return cfg


def save_config(cfg: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    return path


__all__ = ["DEFAULTS", "FINETUNE_LOSSES", "FINETUNE_PARAMS", "UNTRAINED_PARAMS", "ConfigError",
           "apply_overrides", "ensemble_members", "finetune_params", "finetune_settings", "load_config",
           "merge", "read_yaml_mapping", "save_config"]
