"""The predictors shipped in ``ledgformer/predictors`` (``manifest.json`` + one checkpoint each).

``benchmarks/train_shipped.py`` writes both: each manifest entry names the task, the checkpoint
file, the training data, the exact ``ledgformer train`` command and the run's test metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledgformer.errors import LedgformerError

PREDICTORS_DIR = Path(__file__).resolve().parents[1] / "predictors"
MANIFEST = "manifest.json"


def manifest(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """Shipped predictor name -> its manifest entry (empty if none is shipped)."""
    path = (folder or PREDICTORS_DIR) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["predictors"])
    except (ValueError, KeyError, TypeError) as err:
        raise LedgformerError(f"{path}: not a predictor manifest ({err}); rerun "
                              "benchmarks/train_shipped.py") from err


def shipped_checkpoint(name: str, folder: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """(checkpoint path, manifest entry) of shipped predictor ``name``."""
    entries = manifest(folder)
    if name not in entries:
        known = ", ".join(entries) or "none shipped"
        raise LedgformerError(f"unknown predictor '{name}'; shipped predictors: {known} "
                              "(`ledgformer models list`), or give the path of a checkpoint (model.pt)")
    path = (folder or PREDICTORS_DIR) / entries[name]["checkpoint"]
    if not path.is_file():
        raise LedgformerError(f"predictor '{name}': its checkpoint {path} is missing; rerun "
                              f"`python benchmarks/train_shipped.py --only {name}`")
    return path, entries[name]


#: the predictor ``ledgformer predict`` uses per task when none is named (if shipped); NB201 arch
#: strings go to the NB201-specific predictors, whole networks to ``latency-all``
PREFERRED = {"latency": "latency-all", "accuracy": "nb201-acc"}
PREFERRED_NB201 = {"latency": "help-nb201-latency", "accuracy": "nb201-acc"}


def default_predictor(task: str, folder: Path | None = None, model: object = None) -> str:
    """The shipped predictor for ``task`` (and ``model``): the preferred one, else the first of that task."""
    entries = manifest(folder)
    names = [n for n, e in entries.items() if e.get("task") == task]
    if not names:
        have = ", ".join(f"{n} ({e.get('task')})" for n, e in entries.items()) or "none"
        raise LedgformerError(f"no shipped {task} predictor (shipped: {have}); pass --predictor PATH "
                              "with a checkpoint from `ledgformer train` (its model.pt)")
    nb201 = isinstance(model, str) and model.startswith("|") and "~" in model
    preferred = (PREFERRED_NB201 if nb201 else PREFERRED).get(task)
    return preferred if preferred in names else names[0]


def config_devices(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """Hardware cards by role (train / valid / test) of a run config, where the task fixes them."""
    if cfg.get("task") != "help-latency":
        return {}
    from ledgformer.data import splits
    from ledgformer.hardware import card_name

    d = cfg.get("data", {})
    roles = {"train": d.get("train_devices") or splits.HELP_NB201_TRAIN,
             "valid": d.get("valid_devices") or splits.HELP_NB201_VALID,
             "test": d.get("test_devices") or splits.HELP_NB201_TEST}
    return {role: [card_name("help", k) for k in keys] for role, keys in roles.items()}


__all__ = ["MANIFEST", "PREDICTORS_DIR", "PREFERRED", "config_devices", "default_predictor", "manifest",
           "shipped_checkpoint"]
