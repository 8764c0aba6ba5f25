"""Real latency of a model on this machine: warm-up, timed runs, a spread check, never a noisy figure.

A measurement is the median of ``repeat`` timed runs (``time.perf_counter``) after ``warmup``
untimed ones. Its spread is the inter-quartile range; when ``iqr / median`` exceeds
``max_rel_iqr`` the runs were disturbed (another process, frequency changes), so it is taken
again with twice the repeats, up to ``retries`` times, and then ``MeasurementUnstable`` is raised
rather than a figure nobody can trust. CUDA timings synchronise the device around each run;
ONNX Runtime's CUDA timings include copying the input in and the output back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ledgformer.errors import LedgformerError
from ledgformer.hardware import HardwareCard
from ledgformer.measure.detect import RUNTIME_PRECISION, RUNTIMES, detect_card

ModelLike = str | Path | onnx.ModelProto | Any  # Any: a torch.nn.Module (torch imported lazily)
Timer = Callable[[], float]


class MeasurementUnstable(LedgformerError):
    """The timed runs spread too widely to report a latency (the machine is busy)."""


@dataclass(frozen=True)
class Measurement:
    """One latency measurement of one model on one platform (card of this machine + runtime)."""

    platform: str
    model: str
    median_ms: float
    iqr_ms: float
    q1_ms: float
    q3_ms: float
    n_runs: int
    times_ms: tuple[float, ...]
    runtime: str
    runtime_version: str
    threads: int
    precision: str
    batch_size: int
    input_shape: tuple[int, ...]
    device: str
    card: HardwareCard
    timestamp: str
    #: 1-minute load average when the timed runs started (None where the OS has none)
    load_avg: float | None = None
    #: how many series were taken (1 + retries used)
    attempts: int = 1
    warmup: int = 0
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the card as its dict)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("card", "extra")}
        out["times_ms"] = list(self.times_ms)
        out["input_shape"] = list(self.input_shape)
        out["card"] = self.card.to_dict()
        out.update(self.extra)
        return out


def summarise(times_ms: Sequence[float]) -> tuple[float, float, float, float]:
    """(median, q1, q3, iqr) of run times (linear-interpolated quartiles, numpy's default)."""
    arr = np.asarray(times_ms, dtype=float)
    q1, med, q3 = (float(v) for v in np.percentile(arr, [25, 50, 75]))
    return med, q1, q3, q3 - q1


def measure(
    model: ModelLike,
    *,
    runtime: str = "onnxruntime",
    threads: int = 1,
    batch_size: int | None = None,
    input_shape: Sequence[int] | None = None,
    warmup: int = 5,
    repeat: int = 30,
    max_rel_iqr: float = 0.1,
    retries: int = 2,
    device: str = "cpu",
    platform_prefix: str = "local",
    name: str | None = None,
    timer: Timer = time.perf_counter,
) -> Measurement:
    """Time ``model`` (ONNX path / ModelProto / torch module / zoo name) on ``runtime``.

    ``input_shape`` is required for a torch module and for ONNX inputs with dynamic dims other
    than the batch; ``batch_size`` replaces dim 0. ``name`` labels the model in the result and
    in errors. ``card`` is the platform's card (no batch size: ``Measurement.batch_size`` has it).
    ``timer`` is injectable for tests.
    """
    if runtime not in RUNTIMES:
        raise LedgformerError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    for label, value, low in (
        ("threads", threads, 1),
        ("warmup", warmup, 0),
        ("repeat", repeat, 4),
        ("retries", retries, 0),
    ):
        if value < low:
            raise LedgformerError(f"{label} must be >= {low}, got {value}")
    if not max_rel_iqr > 0:
        raise LedgformerError(f"max_rel_iqr must be > 0, got {max_rel_iqr}")
    label, run, shape = _prepare(model, runtime, threads, batch_size, input_shape, device)
    precision = RUNTIME_PRECISION[runtime]
    card = detect_card(runtime, threads, precision, None, device=device, prefix=platform_prefix)
    label = name or label
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with _torch_threads(threads):
        for _ in range(warmup):
            run()
        n, spreads = repeat, []
        for attempt in range(retries + 1):
            times = [_timed(run, timer) for _ in range(n)]
            med, q1, q3, iqr = summarise(times)
            if med > 0 and iqr / med <= max_rel_iqr:
                return Measurement(
                    platform=card.name,
                    model=label,
                    median_ms=med,
                    iqr_ms=iqr,
                    q1_ms=q1,
                    q3_ms=q3,
                    n_runs=n,
                    times_ms=tuple(times),
                    runtime=runtime,
                    runtime_version=card.runtime_version or "?",
                    threads=threads,
                    precision=precision,
                    batch_size=shape[0],
                    input_shape=shape,
                    device=device,
                    card=card,
                    timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    load_avg=load,
                    attempts=attempt + 1,
                    warmup=warmup,
                )
            spreads.append(f"{100 * iqr / med:.0f}%" if med > 0 else "inf")
            n *= 2
    raise MeasurementUnstable(
        f"{label} on {card.name}: run times too spread (IQR/median {', '.join(spreads)} over "
        f"{retries + 1} tries, limit {100 * max_rel_iqr:.3g}%); the machine is busy, measure again when idle"
    )


def _timed(run: Callable[[], None], timer: Timer) -> float:
    start = timer()
    run()
    return (timer() - start) * 1000.0


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op threads for the measurement and put the old value back."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---- model preparation ----------------------------------------------------------------------


def _prepare(
    model: ModelLike,
    runtime: str,
    threads: int,
    batch: int | None,
    input_shape: Sequence[int] | None,
    device: str,
) -> tuple[str, Callable[[], None], tuple[int, ...]]:
    """(label, a zero-argument run function, the input shape) for ``model`` on ``runtime``."""
    import torch

    if device not in ("cpu", "cuda"):
        raise LedgformerError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise LedgformerError("device 'cuda' asked for, but torch sees no CUDA GPU on this machine")
    module: torch.nn.Module | None = None
    proto: onnx.ModelProto | None = None
    if isinstance(model, torch.nn.Module):
        if input_shape is None:
            raise LedgformerError(
                f"{type(model).__name__}: a torch module needs input_shape (e.g. 1,3,224,224)"
            )
        module, label, shape = model, type(model).__name__, tuple(int(d) for d in input_shape)
    elif isinstance(model, onnx.ModelProto) or str(model).lower().endswith(".onnx") or Path(model).is_file():
        proto, label = _load_onnx(model)
        shape = _onnx_input_shape(proto, label, input_shape, batch)
    else:
        from ledgformer.graph.zoo import build_module

        module, default = build_module(str(model))
        label, shape = str(model), tuple(int(d) for d in (input_shape or default))
    if batch is not None:
        if batch < 1:
            raise LedgformerError(f"batch size must be >= 1, got {batch}")
        shape = (int(batch), *shape[1:])
    if any(d < 1 for d in shape):
        raise LedgformerError(f"{label}: input shape {shape} has a dimension below 1")
    if runtime == "torch":
        if module is None:
            raise LedgformerError(
                f"{label}: runtime 'torch' needs a torch module or a zoo name "
                "(pytorchcv:NAME ...), not an ONNX file; use an onnxruntime runtime"
            )
        return label, _torch_runner(module, shape, device), shape
    if proto is None:
        from ledgformer.graph.torch_import import export_onnx

        proto = export_onnx(module, shape)
    return label, _ort_runner(proto, runtime, threads, shape, device, label), shape


def _load_onnx(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "model"
    path = Path(model)
    if not path.is_file():
        raise LedgformerError(
            f"{path}: file not found; give an .onnx file or a zoo name like pytorchcv:resnet18"
        )
    try:
        return onnx.load(str(path)), path.name
    except Exception as err:
        raise LedgformerError(f"{path}: not a readable ONNX file ({type(err).__name__})") from err


def _onnx_input_shape(
    proto: onnx.ModelProto, label: str, input_shape: Sequence[int] | None, batch: int | None
) -> tuple[int, ...]:
    inputs = _graph_inputs(proto)
    if len(inputs) != 1:
        raise LedgformerError(
            f"{label}: measuring needs a model with exactly one input, this one has "
            f"{len(inputs)} ({', '.join(i.name for i in inputs)})"
        )
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    if shape and shape[0] is None:
        shape[0] = batch or 1
    if any(d is None for d in shape):
        raise LedgformerError(
            f"{label}: input '{inputs[0].name}' has dynamic dims {shape}; "
            "give the input shape (e.g. --input-shape 1,3,224,224)"
        )
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _torch_runner(module: Any, shape: tuple[int, ...], device: str) -> Callable[[], None]:
    import torch

    module = module.eval().to(device)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else None

    def run() -> None:
        with torch.inference_mode():
            module(x)
        if sync is not None:
            sync()

    if sync is not None:
        sync()
    return run


def _ort_runner(
    proto: onnx.ModelProto, runtime: str, threads: int, shape: tuple[int, ...], device: str, label: str
) -> Callable[[], None]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    level = ort.GraphOptimizationLevel
    noopt = runtime == "onnxruntime-noopt"
    opts.graph_optimization_level = level.ORT_DISABLE_ALL if noopt else level.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise LedgformerError(
                "device 'cuda': this onnxruntime has no CUDAExecutionProvider; "
                "install onnxruntime-gpu or use device 'cpu'"
            )
        providers.insert(0, "CUDAExecutionProvider")
    blob = _quantised(proto, label) if runtime == "onnxruntime-int8" else proto.SerializeToString()
    try:
        session = ort.InferenceSession(blob, sess_options=opts, providers=providers)
    except Exception as err:
        raise LedgformerError(
            f"{label}: onnxruntime cannot load the model ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    inp = session.get_inputs()[0]
    dtype = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
    }.get(inp.type)
    if dtype is None:
        raise LedgformerError(
            f"{label}: input '{inp.name}' has type {inp.type}; only float and int inputs are timed"
        )
    rng = np.random.default_rng(0)
    floating = np.issubdtype(dtype, np.floating)
    feed = {inp.name: rng.standard_normal(shape).astype(dtype) if floating else np.zeros(shape, dtype)}

    def run() -> None:
        session.run(None, feed)

    return run


def _quantised(proto: onnx.ModelProto, label: str) -> bytes:
    """The model with int8 dynamic quantisation (weights int8, activations quantised per run)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        onnx.save(proto, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its "run pre-processing first" advice is a root-logger warning
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except Exception as err:
            raise LedgformerError(
                f"{label}: int8 dynamic quantisation failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); "
                "use runtime onnxruntime"
            ) from err
        finally:
            root.setLevel(level)
        return dst.read_bytes()


__all__ = ["Measurement", "MeasurementUnstable", "measure", "summarise"]
