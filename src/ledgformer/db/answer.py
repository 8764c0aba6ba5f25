"""Answer "how fast is this graph on that platform": the measured median if the database has one,
else a prediction, and always say which.

The prediction source is pluggable: a ``Predictor`` wraps any ``predict_fn(graph, card) -> ms``.
``load_predictor`` picks it for the CLI: by default the shipped learned latency predictor that
``ledgformer predict`` uses; ``flops`` asks for ``fallback_predictor``, a simple, real estimate,
labelled as such: latency proportional to FLOPs, with the ms-per-FLOP ratio fitted on the
platform's measurements in the database (median ratio), or, with no measurements, the roofline
bound from the card's peak FLOP/s and memory bandwidth (a lower bound, not a learned prediction).
Every predicted answer carries its source's name and version (a checkpoint's content hash), and
stored predictions are keyed by both, so one predictor's number is never taken for another's.
"""

from __future__ import annotations

import importlib
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledgformer.db.store import LatencyDB
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import HardwareCard, load_card

PredictFn = Callable[[ArchGraph, HardwareCard], float]

#: ``--predictor`` value that asks for the FLOPs fit / roofline fallback instead of a learned predictor
FLOPS = "flops"
FLOPS_FIT = "flops-proportional-fit"
ROOFLINE = "roofline-bound"
_PEAK_FIELD = {"fp16": "peak_tflops_fp16", "bf16": "peak_tflops_bf16", "int8": "peak_tops_int8",
               "mixed": "peak_tflops_fp16"}


@dataclass(frozen=True)
class Predictor:
    """A named, versioned prediction source (what ``predictions.predictor`` records)."""

    name: str
    version: str
    fn: PredictFn
    #: shown with every answer, e.g. that this is a fallback estimate and how it was made
    note: str = ""

    def __call__(self, graph: ArchGraph, card: HardwareCard) -> float:
        value = float(self.fn(graph, card))
        if not (math.isfinite(value) and value > 0):
            raise LedgformerError(f"predictor {self.name} returned {value} ms for {card.name}; expected > 0")
        return value

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Answer:
    latency_ms: float
    source: str  # "measured" or "predicted"
    platform: str
    graph_hash: str
    predictor: str | None = None
    note: str = ""
    n_repeats: int | None = None
    iqr_ms: float | None = None
    measured_at: str | None = None

    def describe(self) -> str:
        """One line for people: which kind of number this is and where it comes from."""
        if self.source == "measured":
            return (f"measured: {self.latency_ms:.4g} ms (median of {self.n_repeats} runs, "
                    f"IQR {self.iqr_ms:.2g} ms) on {self.platform}")
        line = f"predicted: {self.latency_ms:.4g} ms by {self.predictor} on {self.platform}"
        return f"{line} ({self.note})" if self.note else line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fallback_predictor(db: LatencyDB | None, platform: str, card: HardwareCard) -> Predictor:
    """The FLOPs-proportional fit on ``platform``'s measurements, else the card's roofline bound."""
    points = [(f, ms) for f, ms in (db.flops_and_medians(platform) if db is not None else []) if f > 0]
    if points:
        ms_per_gflop = statistics.median(ms / (f / 1e9) for f, ms in points)
        return Predictor(FLOPS_FIT, f"n={len(points)},ms/GFLOP={ms_per_gflop:.4g}",
                         lambda g, _c: _need_flops(g) / 1e9 * ms_per_gflop,
                         note=f"fallback estimate, no learned predictor: FLOPs x the median ms/GFLOP of "
                              f"{len(points)} measured graph(s) on this platform")
    peak_field = _PEAK_FIELD.get(card.precision or "", "peak_tflops_fp32")
    peak = getattr(card, peak_field) or card.peak_tflops_fp32
    bandwidth = card.memory_bandwidth_gbs
    if not peak and not bandwidth:
        raise LedgformerError(
            f"no prediction for platform {platform!r} from the FLOPs fallback: no measurements on it in "
            "the database to fit one, and its card has no peak FLOP/s or memory bandwidth (a learned "
            "latency predictor needs neither)")

    def roofline(g: ArchGraph, _c: HardwareCard) -> float:
        compute = _need_flops(g) / (peak * 1e12) if peak else 0.0
        memory = g.mem_bytes / (bandwidth * 1e9) if bandwidth else 0.0
        return max(compute, memory) * 1e3

    return Predictor(ROOFLINE, f"{peak_field if peak else 'no-peak'},bandwidth={bandwidth or 'unknown'}",
                     roofline, note="fallback estimate, no learned predictor and no measurements on this "
                                    "platform: roofline bound from the card's peak figures, a lower bound")


def platform_card(db: LatencyDB | None, name: str) -> HardwareCard:
    """The card of platform ``name``: the database's if stored there, else a registry card."""
    card = db.platform_card(name) if db is not None else None
    if card is not None:
        return card
    try:
        return load_card(name)
    except LedgformerError as err:
        where = f"the database {db.display_url}" if db is not None else "any database"
        raise LedgformerError(f"platform {name!r} is not in {where} and is not a hardware card: "
                              f"{err}") from err


def trained_predictor(spec: str) -> Predictor:
    """A trained ledgformer latency predictor (shipped name or checkpoint path) as a prediction source;
    its version is the checkpoint's content hash, so stored predictions say which weights made them."""
    import hashlib

    from ledgformer.api import Predictor as Trained
    from ledgformer.api.shipped import manifest, shipped_checkpoint

    path = shipped_checkpoint(spec)[0] if spec in manifest() else Path(spec)
    model = Trained.load(spec)
    if model.task != "latency":
        raise LedgformerError(f"--predictor {spec!r} predicts {model.task}, not latency")
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    lock = threading.Lock()

    def predict(graph: ArchGraph, card: HardwareCard) -> float:
        with lock:  # ``serve`` calls one model from its worker threads; its caches are not thread-safe
            try:
                return float(model.predict(graph, hardware=card))
            finally:
                model.clear_cache()  # a service sees ever new graphs: keep its memory flat

    return Predictor(f"ledgformer:{model.name}", version, predict)


def load_predictor(spec: str | None = None, *, model: object = None) -> Predictor | None:
    """The prediction source ``--predictor`` names; None (the default) is the shipped latency
    predictor ``ledgformer predict`` picks for ``model`` (help-nb201-latency for NB201 arch strings,
    latency-all otherwise). ``flops`` returns None: ``answer``'s labelled FLOPs / roofline fallback.
    Else a shipped predictor name or checkpoint (``latency-all``, ``runs/x/model.pt``), or
    ``module:attribute`` naming a ``Predictor`` or a ``predict_fn(graph, card) -> ms``."""
    if spec == FLOPS:
        return None
    if spec is None:
        from ledgformer.api.shipped import default_predictor

        try:
            return trained_predictor(default_predictor("latency", model=model))
        except LedgformerError as err:
            raise LedgformerError(f"default latency predictor: {err} (or --predictor {FLOPS} for the FLOPs / "
                                  "roofline estimate)") from err
    if ":" not in spec:
        return trained_predictor(spec)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise LedgformerError(f"--predictor {spec!r}: expected module:function, e.g. mypkg.latency:predict")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise LedgformerError(f"--predictor {spec!r}: {err}") from err
    if isinstance(obj, Predictor):
        return obj
    if not callable(obj):
        raise LedgformerError(f"--predictor {spec!r} is not callable")
    version = str(getattr(importlib.import_module(module_name), "__version__", "unversioned"))
    return Predictor(spec, version, obj)


def _need_flops(graph: ArchGraph) -> int:
    if graph.flops <= 0:
        raise LedgformerError(f"graph {graph.meta.get('name', '')!r} has no FLOPs (only unknown ops?); "
                              "the FLOPs-based fallback cannot estimate it")
    return graph.flops


def answer(
    db: LatencyDB | None,
    graph: ArchGraph,
    platform: str,
    card: HardwareCard,
    predictor: Predictor | None = None,
    *,
    use_measurements: bool = True,
    record: bool = False,
) -> Answer:
    """The measured median of ``graph`` on ``platform`` if stored, else ``predictor``'s value.

    Without ``predictor`` the fallback above is used. ``use_measurements=False`` is for inline
    cards whose name may clash with a stored platform. ``record`` stores the prediction (the
    platform is added to the database with ``card`` if it is not there yet).
    """
    h = graph.content_hash()
    if db is not None and use_measurements:
        info = db.latest_measurement(h, platform)
        if info is not None:
            return Answer(info.median_ms, "measured", platform, h, n_repeats=info.n_repeats,
                          iqr_ms=info.iqr_ms, measured_at=info.measured_at)
    source = predictor or fallback_predictor(db if use_measurements else None, platform, card)
    value = source(graph, card)
    if record and db is not None:
        db.add_platform(platform, card)
        db.add_prediction(graph, platform, source.name, source.version, value)
    return Answer(value, "predicted", platform, h, predictor=source.label, note=source.note)


__all__ = ["FLOPS", "FLOPS_FIT", "ROOFLINE", "Answer", "PredictFn", "Predictor", "answer",
           "fallback_predictor", "load_predictor", "platform_card", "trained_predictor"]
