"""The hardware card of *this* machine, read from the OS, so a local measurement names its platform.

Only what the machine reports is filled in (CPU model, cores, clock, caches, memory; GPU name,
SMs and memory through ``torch.cuda``); spec-sheet figures we cannot read (bandwidth, peak FLOP/s,
power) stay ``None``. A platform is the machine plus the runtime setting, so the card also holds
runtime, version, precision and threads (batch only when asked), and its name is ``platform_name``.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

from ledgformer.errors import LedgformerError
from ledgformer.hardware import HardwareCard, validate_card

SOURCE = "detected on this machine by ledgformer.measure.detect"
#: runtime key -> (card runtime text, distribution whose version is the runtime version, short tag)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("ONNX Runtime", "onnxruntime", "ort"),
    "onnxruntime-noopt": ("ONNX Runtime (graph optimisations disabled)", "onnxruntime", "ort-noopt"),
    "onnxruntime-int8": ("ONNX Runtime (dynamic int8 quantisation)", "onnxruntime", "ort-int8"),
    "torch": ("PyTorch eager", "torch", "torch"),
}
#: precision each runtime key runs at
RUNTIME_PRECISION = {
    "onnxruntime": "fp32",
    "onnxruntime-noopt": "fp32",
    "onnxruntime-int8": "int8",
    "torch": "fp32",
}
_VENDOR_IDS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
#: (AMD cpu family, first model, last model) -> microarchitecture, from AMD's family/model lists
_AMD_UARCH: tuple[tuple[int, int, int, str], ...] = (
    (23, 0x00, 0x2F, "Zen / Zen+"),
    (23, 0x30, 0xFF, "Zen 2"),
    (25, 0x00, 0x0F, "Zen 3"),
    (25, 0x10, 0x1F, "Zen 4"),
    (25, 0x20, 0x5F, "Zen 3"),
    (25, 0x60, 0x7F, "Zen 4"),
    (25, 0xA0, 0xAF, "Zen 4c"),
    (26, 0x00, 0xFF, "Zen 5"),
)
#: CUDA compute capability major(.minor) -> NVIDIA architecture
_CUDA_ARCH = {
    "6": "Pascal",
    "7.0": "Volta",
    "7.2": "Volta",
    "7.5": "Turing",
    "8.0": "Ampere",
    "8.6": "Ampere",
    "8.7": "Ampere",
    "8.9": "Ada Lovelace",
    "9": "Hopper",
    "10": "Blackwell",
    "12": "Blackwell",
}
_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni", "asimd", "sve")


def runtime_version(runtime: str) -> str:
    """Installed version of the package behind ``runtime`` ("?" when not installed)."""
    _check_runtime(runtime)
    try:
        return metadata.version(RUNTIMES[runtime][1])
    except metadata.PackageNotFoundError:
        return "?"


def _check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise LedgformerError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")


def slug(text: str) -> str:
    """Lower-case name piece: letters and digits joined by single dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def platform_name(
    machine: str,
    runtime: str,
    threads: int,
    precision: str,
    *,
    device: str = "cpu",
    prefix: str = "local",
) -> str:
    """``<prefix>/<machine slug>/<runtime tag>-<N>t-<precision>`` (GPU: ``-cuda`` instead of ``-<N>t``).

    The batch size is not part of the platform: it belongs to each measurement and to the
    graph's input shape, so one platform holds measurements of every batch size.
    """
    tag = RUNTIMES[runtime][2]
    where = "cuda" if device == "cuda" else f"{threads}t"
    return f"{prefix}/{slug(machine)}/{tag}-{where}-{precision}"


def detect_card(
    runtime: str,
    threads: int,
    precision: str,
    batch: int | None = None,
    *,
    device: str = "cpu",
    prefix: str = "local",
) -> HardwareCard:
    """The validated card of this machine running ``runtime`` (GPU card when ``device='cuda'``).

    ``batch`` fills ``batch_size``; leave it None for the platform card, whose measurements
    carry their own batch size.
    """
    _check_runtime(runtime)
    if device not in ("cpu", "cuda"):
        raise LedgformerError(f"device must be 'cpu' or 'cuda', got {device!r}")
    data = _gpu_fields() if device == "cuda" else _cpu_fields()
    machine = data.pop("_machine")
    data.update(
        name=platform_name(machine, runtime, threads, precision, device=device, prefix=prefix),
        runtime=RUNTIMES[runtime][0],
        runtime_version=runtime_version(runtime),
        precision=precision,
        batch_size=batch,
        threads=threads if device == "cpu" else None,
        measurement="measured",
    )
    data["sources"] = {"default": SOURCE}
    return validate_card(data, "ledgformer.measure.detect")


# ---- CPU ------------------------------------------------------------------------------------


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpuinfo() -> dict[str, str]:
    """Fields of the first processor block of /proc/cpuinfo, plus 'cores' (physical core count)."""
    text = _read("/proc/cpuinfo")
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    phys = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        first.setdefault(key, value)
        if key == "physical id":
            phys = value
        elif key == "core id":
            cores.add((phys, value))
    if cores:
        first["cores"] = str(len(cores))
    return first


def _chip_name(model: str, vendor: str) -> str:
    """'Intel(R) Xeon(R) Gold 6226 CPU @ 2.70GHz' -> 'Xeon Gold 6226'."""
    name = re.sub(r"\((R|TM|tm|r)\)", "", model)
    name = re.sub(r"\s+@.*$", "", name)
    name = re.sub(r"\b(CPU|Processor|\d+-Core)\b", "", name)
    name = re.sub(rf"^\s*{re.escape(vendor)}\b", "", name, flags=re.IGNORECASE)
    return " ".join(name.split()) or model


def _caches() -> str | None:
    """'L1d 32 KiB, L1i 32 KiB, L2 1024 KiB, L3 32768 KiB' from cpu0's sysfs cache entries."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    parts = []
    for index in sorted(base.glob("index*")):
        level, kind, size = (_read(index / f).strip() for f in ("level", "type", "size"))
        if not level or not size:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        parts.append(f"L{level}{suffix} {size.replace('K', ' KiB').replace('M', ' MiB')}")
    return ", ".join(parts) or None


def _max_clock_ghz(info: dict[str, str]) -> tuple[float | None, str]:
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    if khz.isdigit() and int(khz) > 0:
        return int(khz) / 1e6, "cpufreq cpuinfo_max_freq"
    mhz = info.get("cpu MHz", "")
    try:
        value = float(mhz)
    except ValueError:
        return None, ""
    if value <= 0:
        return None, ""
    return round(value / 1000, 3), "/proc/cpuinfo 'cpu MHz' (current clock; no cpufreq)"


def _amd_uarch(info: dict[str, str]) -> str | None:
    try:
        family, model = int(info.get("cpu family", "")), int(info.get("model", ""))
    except ValueError:
        return None
    for fam, lo, hi, name in _AMD_UARCH:
        if fam == family and lo <= model <= hi:
            return name
    return None


def _memory_gb() -> float | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s+kB", _read("/proc/meminfo"), flags=re.MULTILINE)
    return round(int(match.group(1)) / 1024**2, 1) if match else None


def _cpu_fields() -> dict[str, object]:
    info = _cpuinfo()
    model = info.get("model name") or info.get("Model") or info.get("Hardware") or platform.processor()
    model = model or platform.machine() or "unknown CPU"
    vendor = _VENDOR_IDS.get(info.get("vendor_id", ""), "") or model.split()[0]
    clock, clock_how = _max_clock_ghz(info)
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = int(info["cores"]) if "cores" in info else logical
    flags = set(info.get("flags", info.get("Features", "")).split())
    isa = [f for f in _ISA_FLAGS if f in flags]
    notes = [f"{logical} logical CPUs usable by this process, {platform.machine()}"]
    if caches := _caches():
        notes.append(f"caches (cpu0): {caches}")
    if isa:
        notes.append("ISA: " + " ".join(isa))
    if clock_how:
        notes.append(f"clock from {clock_how}")
    if "hypervisor" in flags:
        notes.append("virtual machine (hypervisor flag set): model name and clocks are what the VM reports")
    return {
        "_machine": model,
        "kind": "cpu",
        "vendor": vendor,
        "chip": _chip_name(model, vendor),
        "microarchitecture": _amd_uarch(info) if vendor == "AMD" else None,
        "processor": "CPU",
        "compute_units": cores,
        "compute_unit_name": "cores",
        "clock_ghz": clock,
        "memory_type": None,
        "memory_gb": _memory_gb(),
        "notes": "; ".join(notes),
    }


# ---- GPU ------------------------------------------------------------------------------------


def _gpu_fields() -> dict[str, object]:
    import torch

    if not torch.cuda.is_available():
        raise LedgformerError(
            "device 'cuda' asked for, but torch sees no CUDA GPU on this machine; use device 'cpu'"
        )
    props = torch.cuda.get_device_properties(0)
    name = str(props.name)
    vendor = "AMD" if getattr(torch.version, "hip", None) else "NVIDIA"
    cc = f"{props.major}.{props.minor}"
    return {
        "_machine": name,
        "kind": "gpu",
        "vendor": vendor,
        "chip": re.sub(rf"^{vendor}\s+", "", name, flags=re.IGNORECASE) or name,
        "microarchitecture": _CUDA_ARCH.get(cc) or _CUDA_ARCH.get(str(props.major)),
        "processor": "GPU",
        "compute_units": int(props.multi_processor_count),
        "compute_unit_name": "SMs",
        "memory_gb": round(props.total_memory / 1024**3, 1),
        "notes": f"compute capability {cc}; {torch.cuda.device_count()} GPU(s) visible, GPU 0 used",
    }


__all__ = [
    "RUNTIMES",
    "RUNTIME_PRECISION",
    "SOURCE",
    "detect_card",
    "platform_name",
    "runtime_version",
    "slug",
]
