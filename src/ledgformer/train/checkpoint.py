"""Checkpoints: weights plus everything that must match for the weights to mean the same thing.

A checkpoint carries the resolved run config, the model name and config, the text encoder id,
the node-text template version, the IR version, the hardware-card text/feature versions and the
data version (benchmark + split fingerprint). :func:`build_model` compares them with the
running code and raises a ``LedgformerError`` that lists every difference; a checkpoint of an
older card-feature version whose features are a prefix of the current ones (``FEATURE_PREFIXES``)
is first upgraded: its first hardware layer is widened with zero weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ledgformer.errors import LedgformerError

FORMAT_VERSION = 1


def code_versions(encoder_id: str | None) -> dict[str, Any]:
    """The versions of this code that a checkpoint's weights depend on."""
    from ledgformer.graph.ir import IR_VERSION
    from ledgformer.hardware.card import FEATURE_VERSION, TEXT_VERSION
    from ledgformer.text.templates import TEMPLATE_VERSION

    return {
        "format": FORMAT_VERSION, "ir_version": IR_VERSION, "template_version": TEMPLATE_VERSION,
        "card_text_version": TEXT_VERSION, "card_feature_version": FEATURE_VERSION,
        "encoder_id": encoder_id,
    }


def save_checkpoint(path: str | Path, model: nn.Module, *, config: Mapping[str, Any], model_name: str,
                    model_config: Mapping[str, Any], encoder_id: str | None,
                    data_version: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({
        "versions": code_versions(encoder_id), "config": dict(config), "model_name": model_name,
        "model_config": dict(model_config), "data_version": dict(data_version),
        "extra": dict(extra or {}), "state_dict": state,
    }, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LedgformerError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise LedgformerError(f"{path}: not a ledgformer checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "versions" not in ckpt or "state_dict" not in ckpt:
        raise LedgformerError(f"{path}: not a ledgformer checkpoint (no versions/state_dict)")
    return ckpt


def check_versions(ckpt: Mapping[str, Any], source: str, encoder_id: str | None = None,
                   data_version: Mapping[str, Any] | None = None) -> None:
    """Raise naming every field where the checkpoint differs from this code (and data, if given)."""
    saved = dict(ckpt["versions"])
    want = code_versions(encoder_id if encoder_id is not None else saved.get("encoder_id"))
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs current {v!r}"
             for k, v in want.items() if saved.get(k) != v]
    if data_version is not None:
        have = dict(ckpt.get("data_version", {}))
        diffs += [f"data.{k}: checkpoint {have.get(k)!r} vs current {v!r}" for k, v in data_version.items()
                  if k in have and have[k] != v]
    if diffs:
        raise LedgformerError(f"{source} does not match this setup: " + "; ".join(diffs))


#: the first layer that reads the card features, in the models that have one (LeDG-Former, baselines)
_CARD_LAYER = "hw_mlp.0.weight"
#: the reference cards' features of a ``reference-blend`` model (``ledgformer.model.reference``)
_REF_FEAT = "ref_feat"


def _widen_card_features(ckpt: dict[str, Any]) -> None:
    """Upgrade (in place) a checkpoint of a prefix card-feature version: zero weights for the new
    feature columns of its card layer; a model without cards needs nothing. Other models are
    left alone (the version check then refuses them)."""
    from ledgformer.hardware.card import FEATURE_NAMES, FEATURE_PREFIXES, FEATURE_VERSION

    versions, state = ckpt["versions"], ckpt["state_dict"]
    n_old = FEATURE_PREFIXES.get(versions.get("card_feature_version"))
    if n_old is None:
        return
    cfg = ckpt.get("model_config", {})
    layers = [k for k in state if k.endswith(_CARD_LAYER)]
    if cfg.get("task") != "accuracy" and cfg.get("use_hardware") is not False and (
            not layers or any(state[k].shape[1] != n_old for k in layers)):
        return  # reads the cards elsewhere (a classical model's stored card rows): retrain it
    # a K-shot reference blend's stored reference cards: zeros meet the zero weights, as above
    for k in [*layers, *(k for k in state if k.endswith(_REF_FEAT))]:
        w = state[k]
        state[k] = torch.cat([w, w.new_zeros(w.shape[0], len(FEATURE_NAMES) - n_old)], 1)
    if "hw_dims" in cfg:
        cfg["hw_dims"] = [cfg["hw_dims"][0], len(FEATURE_NAMES)]
    ckpt["versions"] = {**versions, "card_feature_version": FEATURE_VERSION}


def build_model(ckpt: dict[str, Any], source: str, encoder_id: str | None = None,
                data_version: Mapping[str, Any] | None = None) -> nn.Module:
    """The checkpoint's model with its weights (train mode), after the version check (which also
    widens an older card-feature prefix): the one way every loader builds a model."""
    from ledgformer.model.registry import create_model

    _widen_card_features(ckpt)
    check_versions(ckpt, source, encoder_id, data_version)
    model = create_model(ckpt["model_name"], **ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    return model


def load_checkpoint(path: str | Path, encoder_id: str | None = None,
                    data_version: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model with weights loaded, in eval mode; the checkpoint dict) after the version check."""
    ckpt = read_checkpoint(path)
    return build_model(ckpt, f"checkpoint {path}", encoder_id, data_version).eval(), ckpt


__all__ = ["FORMAT_VERSION", "build_model", "check_versions", "code_versions", "load_checkpoint",
           "read_checkpoint", "save_checkpoint"]
