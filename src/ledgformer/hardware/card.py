"""HardwareCard: one platform setting (device + runtime + precision + batch) users predict latency for.

A card is checked field by field (``validate_card``) so that a typo in a user's YAML file ends as
one line naming the file, the field and what was expected. Unknown figures are ``None``: the text
leaves them out and ``features()`` marks them missing, so "unknown" never reads as zero.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ledgformer.errors import LedgformerError

#: bump when ``to_text`` changes wording or order (text embeddings are cached on it)
TEXT_VERSION = 1
#: bump when ``FEATURE_NAMES`` changes (2: ``in_order_share`` appended)
FEATURE_VERSION = 2
#: earlier versions whose features are the first N of this one's: {version: N}. A checkpoint of
#: one still loads where the card features enter through one linear layer (its new columns get
#: zero weights, so its predictions do not move)
FEATURE_PREFIXES = {1: 47}

KINDS = ("gpu", "cpu", "mobile-soc", "fpga", "asic", "tpu")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int16", "int8", "int4", "mixed")
#: runtime families for the one-hot; matched against the lower-cased runtime name
RUNTIME_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pytorch-mobile", ("pytorch mobile",)),
    ("pytorch", ("pytorch", "libtorch", "torch")),
    ("tflite", ("tensorflow lite", "tflite", "litert")),
    ("tensorflow", ("tensorflow", "xla", "jax")),
    ("tensorrt", ("tensorrt",)),
    ("onnxruntime", ("onnx runtime", "onnxruntime")),
    ("vitis-ai", ("vitis ai", "vitis-ai")),
    ("simulator", ("simulator", "predictor", "estimat")),
)
_KIND_WORDS = {"gpu": "GPU", "cpu": "CPU", "mobile-soc": "mobile SoC", "fpga": "FPGA", "asic": "ASIC",
               "tpu": "TPU"}


class CardError(LedgformerError, ValueError):
    """A hardware card that is malformed (unknown field, wrong type, impossible value ...)."""


@dataclass(frozen=True)
class HardwareCard:
    """One platform setting. Figures are vendor spec-sheet values; ``None`` = genuinely unknown."""

    name: str
    kind: str
    vendor: str
    chip: str
    product: str | None = None
    microarchitecture: str | None = None
    #: the part of a SoC/board that runs the network, e.g. "CPU big cluster" or "GPU Adreno 640"
    processor: str | None = None
    compute_units: int | None = None
    #: what ``compute_units`` counts: "cores", "SMs", "PEs", "DSP slices" ...
    compute_unit_name: str | None = None
    #: how many of ``compute_units`` are in-order CPU cores (Cortex-A53 / A55 class), 0 when all are
    #: out-of-order: at the same peak an in-order core keeps far less of it busy on a CNN
    in_order_cores: int | None = None
    #: maximum (boost / turbo) clock of the units used
    clock_ghz: float | None = None
    memory_type: str | None = None
    memory_gb: float | None = None
    memory_bandwidth_gbs: float | None = None
    peak_tflops_fp32: float | None = None
    peak_tflops_fp16: float | None = None
    peak_tflops_bf16: float | None = None
    peak_tops_int8: float | None = None
    #: thermal design power (or vendor's typical board power)
    power_w: float | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    precision: str | None = None
    batch_size: int | None = None
    #: CPU threads / cores the runtime was allowed to use
    threads: int | None = None
    #: "measured" on the device, or "estimated" by a simulator/analytical model
    measurement: str | None = None
    notes: str | None = None
    #: (field, public spec sheet) pairs; field "default" covers figures without their own entry
    sources: tuple[tuple[str, str], ...] = ()

    @property
    def source_map(self) -> dict[str, str]:
        return dict(self.sources)

    def source_for(self, field_name: str) -> str | None:
        """The spec sheet a figure comes from (its own entry, else the card's default)."""
        src = self.source_map
        return src.get(field_name, src.get("default"))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON ready); ``validate_card(card.to_dict())`` gives the card back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if f.name == "sources" else value
        return out

    def to_text(self) -> str:
        """Short description the language model reads; unknown figures are left out."""
        head = f"{self.product} ({self.vendor} {self.chip})" if self.product else f"{self.vendor} {self.chip}"
        parts = [head, _KIND_WORDS[self.kind]]
        if self.processor and self.processor.lower() != _KIND_WORDS[self.kind].lower():
            parts.append(self.processor)
        compute = []
        if self.compute_units is not None:
            compute.append(f"{self.compute_units} {self.compute_unit_name or 'units'}")
        if self.microarchitecture:
            compute.append(f"{self.microarchitecture}" if not compute else f"({self.microarchitecture})")
        if self.clock_ghz is not None:
            compute.append(f"at {_num(self.clock_ghz)} GHz")
        if compute:
            parts.append(" ".join(compute))
        memory = [m for m in (self.memory_type,
                              None if self.memory_gb is None else f"{_num(self.memory_gb)} GB",
                              None if self.memory_bandwidth_gbs is None
                              else f"{_num(self.memory_bandwidth_gbs)} GB/s") if m]
        if memory:
            parts.append(" ".join(memory))
        peaks = [f"{_num(v)} {unit}" for v, unit in (
            (self.peak_tflops_fp32, "TFLOP/s fp32"), (self.peak_tflops_fp16, "TFLOP/s fp16"),
            (self.peak_tflops_bf16, "TFLOP/s bf16"), (self.peak_tops_int8, "TOPS int8")) if v is not None]
        if peaks:
            parts.append("peak " + ", ".join(peaks))
        if self.power_w is not None:
            parts.append(f"{_num(self.power_w)} W")
        run = " ".join(x for x in (self.runtime, self.runtime_version, self.precision) if x)
        if run:
            parts.append(run)
        if self.threads is not None:
            parts.append(f"{self.threads} thread" + ("s" if self.threads != 1 else ""))
        if self.batch_size is not None:
            parts.append(f"batch {self.batch_size}")
        if self.measurement == "estimated":
            parts.append("latency estimated by a model, not measured")
        return ", ".join(parts)

    def features(self) -> np.ndarray:
        """Fixed-length float32 vector (``FEATURE_NAMES``): log-scaled figures, missing mask, one-hots."""
        values = []
        mask = []
        for name, scale in _NUMERIC:
            v = getattr(self, name)
            values.append(0.0 if v is None else float(scale(float(v))))
            mask.append(1.0 if v is None else 0.0)
        onehots = [float(self.kind == k) for k in KINDS]
        onehots += [float(self.precision == p) for p in PRECISIONS] + [float(self.precision is None)]
        family = runtime_family(self.runtime)
        onehots += [float(family == f) for f in _FAMILY_NAMES]
        known = self.in_order_cores is not None and self.compute_units is not None
        share = [self.in_order_cores / self.compute_units if known else 0.0, float(not known)]
        return np.asarray(values + mask + onehots + share, dtype=np.float32)

    def fingerprint(self) -> str:
        """A hash of what a model reads from this card: its text and its features (not its name or
        sources). A run records it per card it read, so a later edit to a card marks exactly the runs
        that read it as stale (``ledgformer.train.bench``)."""
        payload = json.dumps({"text": self.to_text(), "features": [float(x) for x in self.features()]})
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _log1p(v: float) -> float:
    return math.log1p(v)


def _log2p1(v: float) -> float:
    return math.log2(1.0 + v)


_NUMERIC: tuple[tuple[str, Any], ...] = (
    ("clock_ghz", _log1p), ("compute_units", _log2p1), ("memory_gb", _log2p1),
    ("memory_bandwidth_gbs", _log1p), ("peak_tflops_fp32", _log1p), ("peak_tflops_fp16", _log1p),
    ("peak_tflops_bf16", _log1p), ("peak_tops_int8", _log1p), ("power_w", _log1p),
    ("batch_size", _log2p1), ("threads", _log2p1),
)
_FAMILY_NAMES = (*tuple(f for f, _ in RUNTIME_FAMILIES), "other", "unknown")

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"log_{n}" for n, _ in _NUMERIC)
    + tuple(f"missing_{n}" for n, _ in _NUMERIC)
    + tuple(f"kind={k}" for k in KINDS)
    + tuple(f"precision={p}" for p in PRECISIONS) + ("precision=unknown",)
    + tuple(f"runtime={f}" for f in _FAMILY_NAMES)
    + ("in_order_share", "missing_in_order_share")
)


def runtime_family(runtime: str | None) -> str:
    """Coarse runtime family ("pytorch", "tflite", "tensorrt" ...; "unknown" when not given)."""
    if not runtime:
        return "unknown"
    low = runtime.lower()
    for family, needles in RUNTIME_FAMILIES:
        if any(n in low for n in needles):
            return family
    return "other"


def _num(v: float) -> str:
    return f"{v:g}"


# ---- validation -----------------------------------------------------------------------------

_STR_FIELDS = {"name", "vendor", "chip", "product", "microarchitecture", "processor", "compute_unit_name",
               "memory_type", "runtime", "runtime_version", "notes"}
_INT_FIELDS = {"compute_units", "batch_size", "threads"}
_COUNT_FIELDS = {"in_order_cores"}  # whole numbers that may be 0
_FLOAT_FIELDS = {"clock_ghz", "memory_gb", "memory_bandwidth_gbs", "peak_tflops_fp32", "peak_tflops_fp16",
                 "peak_tflops_bf16", "peak_tops_int8", "power_w"}
_ENUMS = {"kind": KINDS, "precision": PRECISIONS, "measurement": ("measured", "estimated")}
REQUIRED = ("name", "kind", "vendor", "chip")
CARD_FIELDS = tuple(f.name for f in fields(HardwareCard))
#: fields a ``sources`` entry may name (the figures plus the setting), and "default"
SOURCE_KEYS = frozenset(CARD_FIELDS) - {"name", "sources", "notes"} | {"default"}
#: numeric figures that need a spec-sheet source in built-in cards
FIGURE_FIELDS = tuple(sorted(_INT_FIELDS | _COUNT_FIELDS | _FLOAT_FIELDS))


def validate_card(data: Mapping[str, Any], source: str) -> HardwareCard:
    """Check ``data`` (one card's fields) and build the card; ``source`` names the file in errors."""
    if not isinstance(data, Mapping):
        raise CardError(f"{source}: a hardware card must be a mapping of fields, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in CARD_FIELDS)
    if unknown:
        raise CardError(f"{source}: unknown field {unknown[0]!r}; expected one of: {', '.join(CARD_FIELDS)}")
    for key in REQUIRED:
        if data.get(key) in (None, ""):
            raise CardError(f"{source}: missing required field {key!r}")
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        clean[key] = _check_field(key, value, source)
    if clean.get("in_order_cores", 0) > clean.get("compute_units", math.inf):
        raise CardError(f"{source}: field 'in_order_cores' ({clean['in_order_cores']}) exceeds compute_units "
                        f"({clean['compute_units']})")
    return HardwareCard(**clean)


def _check_field(key: str, value: Any, source: str) -> Any:
    where = f"{source}: field {key!r}"
    if key in _STR_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise CardError(f"{where} must be text, got {type(value).__name__}")
        text = str(value).strip()
        if not text:
            raise CardError(f"{where} must not be empty (use null when unknown)")
        return text
    if key in _ENUMS:
        allowed = _ENUMS[key]
        if value not in allowed:
            raise CardError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
        return value
    if key in _INT_FIELDS or key in _COUNT_FIELDS:
        if isinstance(value, bool) or (not isinstance(value, int) and not (
                isinstance(value, float) and value.is_integer())):
            raise CardError(f"{where} must be a whole number (or null when unknown), got {value!r}")
        low = 0 if key in _COUNT_FIELDS else 1
        if value < low:
            raise CardError(f"{where} must be >= {low}, got {value!r}")
        return int(value)
    if key in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CardError(f"{where} must be a number (or null when unknown), got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise CardError(f"{where} must be a positive number, got {value!r}")
        return float(value)
    if key == "sources":
        if not isinstance(value, Mapping):
            raise CardError(f"{where} must map a field name to a spec sheet (URL or document title)")
        pairs = []
        for k, v in value.items():
            if k not in SOURCE_KEYS:
                raise CardError(f"{where}: unknown figure {k!r}; expected 'default' or a card field")
            if not isinstance(v, str) or not v.strip():
                raise CardError(f"{where}: entry {k!r} must be a URL or document title")
            pairs.append((str(k), v.strip()))
        return tuple(sorted(pairs))
    raise CardError(f"{where}: not a card field")  # pragma: no cover - guarded by the unknown check
