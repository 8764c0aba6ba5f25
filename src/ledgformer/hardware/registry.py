"""Where cards come from: built-in device files + data-set settings, user YAML files, dicts.

Naming scheme (one card name per benchmark device key; build names with ``card_name`` only):

* HELP: ``help/<file stem>`` of ``help/<space>/latency/<key>.pt`` (the ``_N`` suffix is the batch
  size; ``essential_ph_1`` is a phone, not a batch), e.g. ``help/1080ti_256``, ``help/titan_xp_64``.
* mobile-ml-benchmark: ``mmb/<framework>/<device>|<config>|<dtype>`` where ``<framework>`` is the csv
  prefix (``tflite`` or ``torch``) and the rest is the column group, e.g. ``mmb/tflite/pixel4|1large|float``.
* Accel-NASBench: ``anb/<platform_perf key>``, e.g. ``anb/throughput_a100``, ``anb/latency_zcu102``.
* NNLQP: ``nnlqp/<platform column of gt_stage.txt>``, e.g. ``nnlqp/1``.

Physical devices live once in ``cards/devices/<id>.yaml``; ``cards/settings/<prefix>.yaml`` says
which device, runtime, precision, batch and threads each data-set key means. A user card is a YAML
file with the card fields (``base: <card name>`` copies a built-in card and overrides fields); it is
found by path, or by name in a directory listed in ``$LEDGFORMER_CARDS`` (os.pathsep-separated).
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ledgformer.hardware.card import CARD_FIELDS, CardError, HardwareCard, validate_card

CARDS_DIR = Path(__file__).parent / "cards"
DEVICE_FIELDS = frozenset(CARD_FIELDS) - {"name", "runtime", "runtime_version", "precision", "batch_size",
                                          "threads", "measurement"}
SETTING_FIELDS = frozenset({"runtime", "runtime_version", "precision", "batch_size", "threads",
                            "measurement", "notes", "sources"})
_DATASET_PREFIX = {"help": "help", "mmb": "mmb", "mobile_ml_benchmark": "mmb", "mobile-ml-benchmark": "mmb",
                   "anb": "anb", "accel_nasbench": "anb", "accel-nasbench": "anb", "nnlqp": "nnlqp"}
_MMB_CONFIG = re.compile(r"^(?:(\d+)(large|med|small))+$")
_CLUSTER_WORDS = {"large": "large (big)", "med": "medium", "small": "small (LITTLE)"}


def card_name(dataset: str, key: str, framework: str | None = None) -> str:
    """The card name of a benchmark's device key (see the module docstring for the scheme)."""
    prefix = _DATASET_PREFIX.get(dataset.lower())
    if prefix is None:
        raise CardError(f"unknown data set {dataset!r}; expected one of {', '.join(sorted(_DATASET_PREFIX))}")
    if prefix == "mmb":
        if framework not in ("tflite", "torch"):
            raise CardError(f"mobile-ml-benchmark key {key!r} needs framework 'tflite' or 'torch', "
                            f"got {framework!r}")
        return f"mmb/{framework}/{key}"
    return f"{prefix}/{key}"


def load_card(name_or_path: str | Path | Mapping[str, Any]) -> HardwareCard:
    """A card from a registry name, a YAML file path or a dict of card fields."""
    if isinstance(name_or_path, Mapping):
        return validate_card(_apply_base(dict(name_or_path), "<dict>"), "<dict>")
    text = str(name_or_path)
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or path.is_file():
        return load_card_file(path)
    for folder in user_card_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return load_card_file(candidate)
    if text.startswith("embedded/"):  # the platforms of the data set shipped in the package
        from ledgformer.embedded import load_embedded_card

        return load_embedded_card(text)
    return _builtin_card(text)


def card_fingerprints(names: Iterable[str]) -> dict[str, str | None]:
    """{card name: ``HardwareCard.fingerprint()``}, None for a name that no longer loads."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = load_card(name).fingerprint()
        except CardError:
            out[name] = None
    return out


def load_card_file(path: Path) -> HardwareCard:
    """A user card file: card fields, optional ``base`` card; ``name`` defaults to the file stem."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CardError(f"{path}: a hardware card file must hold a mapping of fields")
    data.setdefault("name", path.stem)
    return validate_card(_apply_base(data, str(path)), str(path))


def user_card_dirs() -> list[Path]:
    """Folders listed in ``$LEDGFORMER_CARDS`` (missing ones are an error, not silently skipped)."""
    raw = os.environ.get("LEDGFORMER_CARDS", "")
    dirs = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    for d in dirs:
        if not d.is_dir():
            raise CardError(f"LEDGFORMER_CARDS: {d} is not a directory")
    return dirs


def list_cards() -> list[str]:
    """Every built-in card name plus the user cards found in ``$LEDGFORMER_CARDS``."""
    from ledgformer.embedded import list_embedded_cards

    names = list(_builtin_names()) + list(list_embedded_cards())
    for folder in user_card_dirs():
        names += sorted(p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    return names


def list_devices() -> list[str]:
    """Ids of the physical device files in ``cards/devices``."""
    return sorted(p.stem for p in (CARDS_DIR / "devices").glob("*.yaml"))


# ---- built-in resolution --------------------------------------------------------------------

@functools.cache
def _builtin_names() -> tuple[str, ...]:
    names: list[str] = []
    for prefix in ("help", "anb", "nnlqp"):
        for key, entry in _settings(prefix)["cards"].items():
            batches = entry.get("batches")
            names += [f"{prefix}/{key}_{b}" for b in batches] if batches else [f"{prefix}/{key}"]
    mmb = _settings("mmb")
    for framework in mmb["frameworks"]:
        for phone, entry in mmb["phones"].items():
            for config in entry["configs"]:
                dtypes = ["float"] if config == "gpu" else list(mmb["dtypes"])
                names += [f"mmb/{framework}/{phone}|{config}|{d}" for d in dtypes]
    return tuple(names)


@functools.lru_cache(maxsize=512)
def _builtin_card(name: str) -> HardwareCard:
    prefix, _, key = name.partition("/")
    if prefix in ("help", "anb", "nnlqp") and key:
        data = _resolve_simple(prefix, key)
    elif prefix == "mmb" and key:
        data = _resolve_mmb(key)
    else:
        data = None
    if data is None:
        raise CardError(f"unknown hardware card {name!r}{_suggest(name)}; "
                        "expected a card name (`ledgformer hardware list`) or a YAML file path")
    data["name"] = name
    return validate_card(data, data.pop("_source"))


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, _builtin_names(), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _resolve_simple(prefix: str, key: str) -> dict[str, Any] | None:
    cards = _settings(prefix)["cards"]
    entry, batch = cards.get(key), None
    if entry is None or entry.get("batches"):
        base, _, suffix = key.rpartition("_")
        entry = cards.get(base)
        if entry is None or not suffix.isdigit() or int(suffix) not in entry.get("batches", ()):
            return None
        batch = int(suffix)
    entry = dict(entry)
    device_id = entry.pop("device")
    processor = entry.pop("processor", None)
    entry.pop("batches", None)
    data = _device_data(device_id, processor)
    if batch is not None:
        entry["batch_size"] = batch
    _merge_setting(data, entry, f"settings/{prefix}.yaml[{key}]")
    return data


def _resolve_mmb(key: str) -> dict[str, Any] | None:
    mmb = _settings("mmb")
    framework, _, column = key.partition("/")
    parts = column.split("|")
    if framework not in mmb["frameworks"] or len(parts) != 3 or parts[0] not in mmb["phones"]:
        return None
    phone, config, dtype = parts
    if dtype not in mmb["dtypes"]:
        return None
    unit = "gpu" if config == "gpu" else "cpu"
    precision = mmb["dtypes"][dtype].get(unit)
    if precision is None:
        return None
    device_id = mmb["phones"][phone]["device"]
    if unit == "gpu":
        data = _device_data(device_id, "gpu")
        threads = None
    else:
        data = _cpu_clusters(device_id, config)
        if data is None:
            return None
        threads = data["compute_units"]
    setting = dict(mmb["frameworks"][framework])
    setting.update(precision=precision, threads=threads, batch_size=1)
    sources = dict(setting.pop("sources", {}))
    sources.update(mmb.get("sources", {}))
    setting["sources"] = sources
    _merge_setting(data, setting, f"settings/mmb.yaml[{framework}]")
    return data


def _cpu_clusters(device_id: str, config: str) -> dict[str, Any] | None:
    """Device data for a CPU core set such as ``2small`` or ``1large2med`` (cores pinned by the run)."""
    if not _MMB_CONFIG.match(config):
        return None
    data = _device_data(device_id, None)
    procs = _device_file(device_id).get("processors", {})
    used = [(int(n), cluster) for n, cluster in re.findall(r"(\d+)(large|med|small)", config)]
    archs, clocks, sources = [], [], dict(data.get("sources", {}))
    peaks: list[float | None] = []
    in_order: list[int | None] = []
    cited: dict[str, str] = {}
    pipelines: dict[str, str] = {}
    for count, cluster in used:
        proc = procs.get(cluster)
        if proc is None or count < 1 or count > proc.get("compute_units", 0):
            return None
        archs.append(f"{count}x {proc.get('microarchitecture', cluster)}")
        if proc.get("clock_ghz") is not None:
            clocks.append(proc["clock_ghz"])
        sources.update(proc.get("sources", {}))
        core = core_peak(proc.get("microarchitecture"))
        peaks.append(None if core is None or proc.get("clock_ghz") is None
                     else count * core[0] * proc["clock_ghz"])
        if core is not None:
            cited[proc["microarchitecture"]] = f"{core[0]:g} ({core[1]})"
        pipe = core_pipeline(proc.get("microarchitecture"))
        in_order.append(None if pipe is None else count * (pipe[0] == "in-order"))
        if pipe is not None:
            pipelines[proc["microarchitecture"]] = f"{pipe[0]} ({pipe[1]})"
    data.update(
        processor="CPU " + " + ".join(_CLUSTER_WORDS[c] for _, c in used) + (" clusters" if len(used) > 1
                                                                             else " cluster"),
        microarchitecture=" + ".join(archs), compute_units=sum(n for n, _ in used), compute_unit_name="cores",
        clock_ghz=max(clocks) if len(clocks) == len(used) else None, sources=sources,
    )
    if all(p is not None for p in peaks):  # only when every cluster's core is known
        data["peak_tflops_fp32"] = round(sum(peaks) / 1000, 5)  # GFLOP/s -> TFLOP/s
        sources["peak_tflops_fp32"] = ("cores x FLOP/cycle x max clock of each cluster; FLOP/cycle: "
                                       + "; ".join(f"{k} {v}" for k, v in cited.items()))
    if all(n is not None for n in in_order):
        data["in_order_cores"] = sum(n for n in in_order if n is not None)
        sources["in_order_cores"] = "; ".join(f"{k} {v}" for k, v in pipelines.items())
    return data


def core_peak(microarchitecture: str | None) -> tuple[float, str] | None:
    """(FP32 FLOP per cycle, source) of a CPU core from ``cards/cores.yaml``; a name such as
    "Kryo 485 Gold (Cortex-A76 based)" is looked up as Cortex-A76. None when not listed."""
    entry = _core_entry(microarchitecture)
    return None if entry is None else (float(entry["flops_per_cycle_fp32"]), str(entry["source"]))


def core_pipeline(microarchitecture: str | None) -> tuple[str, str] | None:
    """("in-order" or "out-of-order", source) of a CPU core from ``cards/cores.yaml``, or None."""
    entry = _core_entry(microarchitecture)
    return None if entry is None else (str(entry["pipeline"]), str(entry["pipeline_source"]))


def _core_entry(microarchitecture: str | None) -> dict[str, Any] | None:
    if not microarchitecture:
        return None
    cores = _cores()
    based = re.search(r"\(([^()]+?) based\)", microarchitecture)
    for name in (microarchitecture, based.group(1) if based else None):
        if name in cores:
            return cores[name]
    return None


@functools.cache
def _cores() -> dict[str, Any]:
    data = _read_yaml(CARDS_DIR / "cores.yaml")
    cores = data.get("cores") if isinstance(data, dict) else None
    keys = {"flops_per_cycle_fp32", "source", "pipeline", "pipeline_source"}
    if not isinstance(cores, dict) or any(
            not isinstance(v, dict) or set(v) != keys or v["pipeline"] not in ("in-order", "out-of-order")
            for v in cores.values()):
        raise CardError("cards/cores.yaml: expected cores: {name: {flops_per_cycle_fp32, source, pipeline "
                        "(in-order | out-of-order), pipeline_source}}")
    return cores


def _device_data(device_id: str, processor: str | None) -> dict[str, Any]:
    raw = _device_file(device_id)
    data = {k: v for k, v in raw.items() if k != "processors"}
    data["sources"] = dict(data.get("sources") or {})
    data["_source"] = f"cards/devices/{device_id}.yaml"
    if processor is not None:
        proc = raw.get("processors", {}).get(processor)
        if proc is None:
            raise CardError(f"cards/devices/{device_id}.yaml: no processor {processor!r}")
        proc = dict(proc)
        data["sources"].update(proc.pop("sources", {}) or {})
        data.update(proc)
    return data


def _merge_setting(data: dict[str, Any], setting: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(setting) - SETTING_FIELDS)
    if unknown:
        raise CardError(f"{where}: unknown setting field {unknown[0]!r}; expected {sorted(SETTING_FIELDS)}")
    setting = dict(setting)
    data["sources"].update(setting.pop("sources", {}) or {})
    notes = setting.pop("notes", None)
    if notes:
        data["notes"] = f"{data['notes']} {notes}" if data.get("notes") else notes
    data.update(setting)
    data["_source"] = f"{data['_source']} + {where}"


@functools.cache
def _device_file_cached(device_id: str) -> dict[str, Any]:
    path = CARDS_DIR / "devices" / f"{device_id}.yaml"
    if not path.is_file():
        raise CardError(f"unknown device {device_id!r}: no {path.name} in cards/devices")
    raw = _read_yaml(path)
    where = f"cards/devices/{path.name}"
    if not isinstance(raw, dict):
        raise CardError(f"{where}: expected a mapping of device fields")
    allowed = DEVICE_FIELDS | {"processors"}
    for key in raw:
        if key not in allowed:
            raise CardError(f"{where}: unknown device field {key!r}; expected {sorted(allowed)}")
    for pname, proc in (raw.get("processors") or {}).items():
        bad = sorted(set(proc) - DEVICE_FIELDS) if isinstance(proc, dict) else ["<not a mapping>"]
        if bad:
            raise CardError(f"{where}: processors.{pname}: unknown field {bad[0]!r}")
    return raw


def _device_file(device_id: str) -> dict[str, Any]:
    return copy.deepcopy(_device_file_cached(device_id))


@functools.cache
def _settings(prefix: str) -> dict[str, Any]:
    """One settings file, parsed once and shared: read-only (resolvers copy what they change; a
    deep copy per card cost a `predict` call ~60 ms over its ~190 training platforms)."""
    data = _read_yaml(CARDS_DIR / "settings" / f"{prefix}.yaml")
    if not isinstance(data, dict):
        raise CardError(f"cards/settings/{prefix}.yaml: expected a mapping")
    return data


def _read_yaml(path: Path) -> Any:
    """Safe YAML, through libyaml when PyYAML has it (a predict call reads ~35 card files)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError as err:
        raise CardError(f"{path}: no such card file") from err
    except yaml.YAMLError as err:
        raise CardError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err


def _apply_base(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Copy the fields of ``data['base']`` (a card name) under the user's own fields."""
    base_name = data.pop("base", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise CardError(f"{source}: field 'base' must be a card name, got {base_name!r}")
    merged = load_card(base_name).to_dict()
    sources = dict(merged.get("sources") or {})
    sources.update(data.pop("sources", None) or {})
    merged.update(data)
    merged["sources"] = sources
    return merged
