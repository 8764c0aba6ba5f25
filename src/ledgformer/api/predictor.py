"""``Predictor``: the user-facing latency / accuracy predictor.

    from ledgformer import Predictor
    p = Predictor.load("nb201-acc")                      # a shipped predictor, or a model.pt path
    p.predict("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    lat = Predictor.load("runs/help-s0/model.pt")
    lat.predict("model.onnx", hardware="help/pixel3")    # ms; a list of models is one batched call
    lat.rank(archs, hardware="my-board.yaml")            # indices, fastest first

Latency predictors return milliseconds and need ``hardware=``; accuracy predictors return % and
refuse it. Device-independent work (featurising, the blocks before the hardware token) is cached
per graph in memory, so asking for another device costs only the readout; for late-fusion models
(``hw_layers=0``) also on disk per checkpoint hash (``ledgformer.model.encoding_cache``), so a
new process ranks a space it has seen before in about a second. NASLib-style
``fit(archs, targets)`` / ``query(archs)`` train or fine-tune the model on the user's data.
The models are small: ``torch.set_num_threads(1)`` is usually fastest (several times faster for
ranking a whole space on a busy machine); the CLI does that by default.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ledgformer.api.batching import Featurizer, GraphStore, node_shares
from ledgformer.api.inputs import (
    ARCH_FORMS,
    ModelRef,
    default_arch_form,
    resolve_cards,
    resolve_model,
    resolve_models,
)
from ledgformer.api.platforms import measured_error, nearest_platforms
from ledgformer.api.shipped import config_devices, shipped_checkpoint
from ledgformer.embed import DEFAULT_ENCODER, Encoder, get_encoder
from ledgformer.errors import LedgformerError
from ledgformer.hardware import HardwareCard

_HW_HINT = ("a card name (`ledgformer hardware list`), a card YAML path, a dict of card fields or a "
            "HardwareCard")


class Predictor:
    """A trained (or new) model with its encoder, its training context and inference caches."""

    def __init__(self, model: torch.nn.Module, *, name: str, encoder: Encoder, model_name: str,
                 model_config: dict[str, Any], config: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, data_version: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, chunk_size: int = 512) -> None:
        self.model = model.cpu().eval()
        self.name, self.encoder, self.model_name = name, encoder, model_name
        self.model_config, self.config = dict(model_config), dict(config or {})
        self.extra, self.data_version = dict(extra or {}), dict(data_version or {})
        #: test metrics of the run that produced the weights (metrics.json keys); {} when unknown
        self.metrics: dict[str, Any] = dict(metrics or self.extra.get("metrics") or {})
        self.task: str = getattr(model, "task", self.model_config.get("task", "accuracy"))
        self.needs_hardware = bool(getattr(model, "has_hw", self.task == "latency"))
        self.arch_form: str = self.extra.get("arch_form") or default_arch_form(self.task, self.config)
        if self.arch_form not in ARCH_FORMS:
            raise LedgformerError(f"predictor {name}: arch_form must be one of {ARCH_FORMS}")
        #: hardware cards by role ("train", "valid", "test") the weights were fitted/evaluated on
        self.devices: dict[str, list[str]] = self.extra.get("devices") or config_devices(self.config)
        data = self.config.get("data") or {}
        self._feat = Featurizer(encoder, proxies=data.get("proxies") or [],
                                benchmark=str(data.get("benchmark", "")))
        self._chunk_size = chunk_size
        self._use(self.model)

    def _use(self, model: torch.nn.Module) -> None:
        """Predict with ``model`` (new weights, or a K-shot blend around the old ones) from now on:
        the graph caches of the old weights are dropped."""
        from ledgformer.model.reference import adapted_spec

        self.model_name, self.model_config = adapted_spec(model, self.model_name, self.model_config)
        self.model = model.cpu().eval()
        self._store = GraphStore(self.model, self._feat, needs_hardware=self.needs_hardware,
                                 batch_size=self._chunk_size)

    @property
    def unit(self) -> str:
        return "ms" if self.task == "latency" else "%"

    def __repr__(self) -> str:
        return (f"Predictor({self.name!r}, task={self.task}, model={self.model_name}, "
                f"encoder={self.encoder.name})")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path, *, chunk_size: int = 512) -> Predictor:
        """A shipped predictor by name (``ledgformer models list``) or a checkpoint path (model.pt).

        ``chunk_size``: graphs featurised and read out per step (bounds the memory of big lists)."""
        from ledgformer.train.checkpoint import build_model, read_checkpoint

        text = str(name_or_path)
        entry: dict[str, Any] = {}
        if isinstance(name_or_path, Path) or text.endswith(".pt") or Path(text).is_file():
            path, name = Path(text), Path(text).stem if Path(text).stem != "model" else text
        else:
            path, entry = shipped_checkpoint(text)
            name = text
        ckpt = read_checkpoint(path)
        cfg = ckpt.get("config", {})
        encoder = get_encoder(cfg.get("features", {}).get("encoder", DEFAULT_ENCODER))
        model = build_model(ckpt, f"predictor {name} ({path})", encoder.id)
        extra = dict(ckpt.get("extra", {}))
        metrics = extra.get("metrics") or entry.get("metrics") or _run_metrics(path)
        return cls(model, name=name, encoder=encoder, model_name=ckpt["model_name"],
                   model_config=ckpt["model_config"], config=cfg, extra=extra,
                   data_version=ckpt.get("data_version"), metrics=metrics, chunk_size=chunk_size)

    @classmethod
    def create(cls, model: str = "ledgformer", *, task: str = "accuracy", encoder: str = DEFAULT_ENCODER,
               arch_form: str | None = None, name: str | None = None, proxies: Sequence[str] = (),
               **model_config: Any) -> Predictor:
        """A new, untrained predictor (train it with ``fit``); ``model_config``: the model's keys.

        ``proxies``: zero-cost proxies of NAS-Bench-201 archs (``spaces.proxies``, e.g.
        ``["synflow"]``, on the CIFAR-10 network) the model reads beside the graph."""
        from ledgformer.model.registry import create_model

        if task not in ("latency", "accuracy"):
            raise LedgformerError(f"task must be 'latency' or 'accuracy', got {task!r}")
        enc = get_encoder(encoder)
        kw = {"task": task, "text_dim": enc.dim, "hw_text_dim": enc.dim, "use_hardware": task == "latency",
              **({"n_extra": len(proxies)} if proxies else {}), **model_config}
        net = create_model(model, **kw)
        config: dict[str, Any] = {"task": "user", "features": {"encoder": encoder},
                                  "model": {"name": model, **model_config}}
        if proxies:
            config["data"] = {"proxies": list(proxies), "benchmark": "nb201-cifar10"}
        extra = {"arch_form": arch_form} if arch_form else {}
        return cls(net, name=name or f"new-{model}-{task}", encoder=enc, model_name=model, model_config=kw,
                   config=config, extra=extra)

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint that ``Predictor.load`` (and ``ledgformer predict``) reads back."""
        from ledgformer.train.checkpoint import save_checkpoint

        extra = {**self.extra, "arch_form": self.arch_form, "devices": self.devices, "metrics": self.metrics}
        return save_checkpoint(path, self.model, config=self.config, model_name=self.model_name,
                               model_config=self.model_config, encoder_id=self.encoder.id,
                               data_version=self.data_version, extra=extra)

    # ---- inference ----------------------------------------------------------------------------
    def _hardware(self, hardware: Any) -> tuple[list[HardwareCard] | None, bool]:
        if not self.needs_hardware:
            if hardware is not None:
                raise LedgformerError(
                    f"predictor {self.name} predicts {self.task} ({self.unit}), which does not depend "
                    "on hardware: call it without hardware= / --hardware")
            return None, True
        if hardware is None:
            raise LedgformerError(f"predictor {self.name} predicts latency (ms) on a device: pass "
                                  f"hardware= (--hardware), {_HW_HINT}")
        return resolve_cards(hardware)

    def _refs(self, models: Any, input_shape: Sequence[int] | None,
              batch_size: int | None) -> tuple[list[ModelRef], bool]:
        return resolve_models(models, arch_form=self.arch_form, input_shape=input_shape,
                              batch_size=batch_size)

    def predict(self, models: Any, hardware: Any = None, *, input_shape: Sequence[int] | None = None,
                batch_size: int | None = None) -> Any:
        """Latency (ms) or accuracy (%): a float for one model, an array for a list of models.

        ``hardware`` may be a list of cards: then one column per card (graphs encoded once).
        ``input_shape`` / ``batch_size`` apply to ONNX files, zoo names and torch modules.
        """
        cards, one_card = self._hardware(hardware)
        refs, one_model = self._refs(models, input_shape, batch_size)
        hw = self._feat.hardware(cards) if cards is not None else None
        out = self._store.predict(refs, hw)
        out = np.exp(out) if self.task == "latency" else out
        if one_card:
            out = out[:, 0]
        return (float(out[0]) if one_card else out[0]) if one_model else out

    def query(self, archs: Sequence[Any], hardware: Any = None) -> np.ndarray:
        """NASLib-style: predictions for a sequence of archs, as an array."""
        return np.asarray(self.predict(list(archs), hardware), np.float64)

    def rank(self, archs: Sequence[Any], hardware: Any = None) -> np.ndarray:
        """Indices of ``archs`` best first: fastest (latency) or most accurate (accuracy)."""
        if isinstance(hardware, (list, tuple)):
            raise LedgformerError("rank orders archs for one device: pass a single hardware card")
        values = self.query(archs, hardware)
        return np.argsort(values if self.task == "latency" else -values, kind="stable")

    def breakdown(self, model: Any, hardware: Any, *, input_shape: Sequence[int] | None = None,
                  batch_size: int | None = None) -> list[dict[str, Any]]:
        """Each node's share of the predicted latency (softmax of the sum readout's node scores),
        largest first: ``{"index", "name", "op", "text", "share", "ms"}``; shares sum to 1."""
        if self.task != "latency" or not hasattr(self.model, "decode_parts") \
                or getattr(getattr(self.model, "config", None), "readout", None) != "sum":
            raise LedgformerError(f"predictor {self.name}: a per-node breakdown needs a LeDG-Former "
                                  "latency model with the sum readout")
        cards, one = self._hardware(hardware)
        if cards is None or not one:
            raise LedgformerError("breakdown is for one hardware card")
        ref = resolve_model(model, arch_form=self.arch_form, input_shape=input_shape, batch_size=batch_size)
        graph = ref.graph()
        (item,) = self._feat.tensors([graph])
        shares = node_shares(self.model, item, self._feat.table(), self._feat.hardware(cards))
        total = self.predict(ref, cards[0])
        from ledgformer.text.templates import node_text

        rows = [{"index": i, "name": n.name, "op": n.op, "text": node_text(n), "share": float(shares[i]),
                 "ms": float(shares[i] * total)} for i, n in enumerate(graph.nodes)]
        return sorted(rows, key=lambda r: -r["share"])

    # ---- context ------------------------------------------------------------------------------
    def nearest_platforms(self, hardware: Any, k: int = 3) -> list[dict[str, Any]]:
        """The training devices most similar to ``hardware`` (empty if they are unknown)."""
        cards, _ = resolve_cards(hardware)
        return nearest_platforms(self._feat, cards[0], self.devices.get("train", []), k)

    def measured_error(self, hardware: Any = None) -> dict[str, Any] | None:
        """The test error measured for this predictor on that kind of hardware (None if unknown)."""
        card = resolve_cards(hardware)[0][0] if hardware is not None else None
        return measured_error(self.metrics, self.task, card, self.devices.get("test", []))

    def clear_cache(self) -> None:
        """Drop the in-memory graph encodings (read back from the disk cache or rebuilt on demand)."""
        self._store.clear()

    # ---- training -----------------------------------------------------------------------------
    def fit(self, archs: Sequence[Any], targets: Sequence[float], hardware: Any = None, *,
            valid_fraction: float = 0.1, seed: int = 0, input_shape: Sequence[int] | None = None,
            **train: Any) -> Predictor:
        """Train (or fine-tune) on user data: ``targets`` in ms (latency) or % (accuracy).

        ``hardware``: None (accuracy), one card for every example, or one card per example.
        ``train``: keys of the training config (epochs, lr, batch_size, patience, loss,
        rank_weight ...). ``valid_fraction`` of the graphs are held out to select the best epoch;
        when that is fewer than 5 graphs, selection uses the training data instead.
        """
        from ledgformer.api.fitting import fit_model

        archs = list(archs)
        y = np.asarray(targets, np.float64)
        if y.shape != (len(archs),):
            raise LedgformerError(f"fit: {len(archs)} archs but targets of shape {y.shape}")
        refs, _ = self._refs(archs, input_shape, None)
        cards: list[HardwareCard] | None = None
        if self.needs_hardware:
            cards, one = self._hardware(hardware)
            if one:
                cards = cards * len(archs)
            elif len(cards) != len(archs):
                raise LedgformerError(f"fit: {len(archs)} archs but {len(cards)} hardware cards; give "
                                      "one card, or one per arch")
        else:
            self._hardware(hardware)
        tcfg, summary = fit_model(self.model, self._feat, refs, y, cards, kind=self.task,
                                  valid_fraction=valid_fraction, seed=seed, train=train)
        self.model.cpu().eval()
        self._store.clear()
        self.config = {**copy.deepcopy(self.config), "train": tcfg, "seed": seed}
        self.metrics = {}  # the old test metrics no longer describe these weights
        self.extra["fitted"] = {"n": len(archs), **{k: summary[k] for k in ("best_epoch", "epochs_run")}}
        return self

    def adapt(self, archs: Sequence[Any], latencies: Sequence[float], hardware: Any, *, seed: int = 0,
              input_shape: Sequence[int] | None = None, **recipe: Any) -> Predictor:
        """Adapt a latency predictor to one device from a few networks measured on it (K-shot).

        Runs the K-shot recipe of the predictor's config (``finetune``: steps, lr, params, keep ...;
        the HELP configs' were chosen on HELP's validation devices, a config without the section
        gets the defaults; ``recipe`` overrides its keys), the adaptation the benchmark suites'
        K = 10 / 20 numbers measure. ``latencies`` in ms, one per arch, all
        measured on ``hardware``. The adapted weights serve that device; keep the original
        predictor for others. ``self.extra["adapted"]`` records K, the recipe and the fit.
        The weights repeat bit for bit at a fixed torch thread count (``finetune --measured`` sets
        the config's ``train.threads``; a library call leaves the process's setting alone).
        """
        from ledgformer.api.fitting import adapt_model

        if self.task != "latency":
            raise LedgformerError(f"adapt: {self.name} predicts accuracy; adapt fits a latency predictor "
                                  "to a device (train accuracy predictors with fit)")
        archs = list(archs)
        y = np.asarray(latencies, np.float64)
        if y.shape != (len(archs),):
            raise LedgformerError(f"adapt: {len(archs)} archs but latencies of shape {y.shape}")
        cards, one = self._hardware(hardware)
        if not one:
            raise LedgformerError("adapt: give the one hardware card the latencies were measured on")
        refs, _ = self._refs(archs, input_shape, None)
        model, done = adapt_model(self.model, self._feat, refs, y, cards[0], self.config, seed=seed,
                                  recipe=recipe, references=self.devices.get("train", []))
        self._use(model)
        self.metrics = {}  # the old test metrics no longer describe these weights
        self.extra["adapted"] = done
        return self


def _run_metrics(path: Path) -> dict[str, Any]:
    """``metrics.json`` of the run folder that holds ``path`` ({} if there is none)."""
    file = path.parent / "metrics.json"
    try:
        return json.loads(file.read_text()) if file.is_file() else {}
    except ValueError:
        return {}


__all__ = ["Predictor"]
