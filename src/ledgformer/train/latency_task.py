"""Task ``latency``: whole-network latency from one or more latency benchmarks, split three ways.

Examples are ``(graph, hardware card, measured ms)`` from ``data.benchmark`` (a name or a list;
``embedded`` is the data set shipped in the package, the others load from the data root). Every
split is made at graph level, so one network measured on several platforms never sits in both
train and valid, and is deterministic from the seed (``data.split``):

* ``family``: leave one family out: every graph of ``data.test_family`` is test; valid is the
  family ``data.valid_family`` if given, else ``data.valid_fraction`` of each training family's
  graphs (``splits.family_split``); the test family never appears in train or valid.
* ``device``: leave one device out (zero-shot): every example on ``data.test_device`` is test;
  valid is every example on ``data.valid_device`` if given (an unseen device, as in the test),
  else a seeded ``data.valid_fraction`` of the graphs measured on the other devices.
* ``random``: a seeded graph-level split, ``data.test_fraction`` of the graphs to test and
  ``data.valid_fraction`` of the rest to valid (``splits.sample_split``).

Records tagged ``output_cut_off`` (NAS-Bench-201 networks whose output does not depend on their
input: their latency is the runtime's constant folding, not the graph's; see ``data.help``) are
left out and counted in the data version. ``data.devices`` keeps only those cards (names or globs);
``data.drop_families`` leaves those families out entirely (design studies: see configs/studies);
``data.max_graphs`` keeps a seeded, family-balanced subset of the graphs (quick runs and tests).
The split JSON names what was held out and the graph ids of each part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.data.splits import Split, family_split, sample_split
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.model.features import hardware_tensors
from ledgformer.train.tasks import TaskData, featurize

SPLIT_MODES = ("family", "device", "random")


@dataclass
class LatencyTaskData(TaskData):
    """TaskData plus the family of every graph row, for ``<part>.per_family.<family>`` metrics."""

    graph_family: list[str] = field(default_factory=list)

    def families(self, idx: np.ndarray) -> list[str]:
        return [self.graph_family[r] for r in self.graph_row[idx]]


@dataclass(frozen=True)
class Examples:
    """Latency examples before featurisation: graph and device per example, in a fixed order."""

    graph_ids: list[str]
    graph_family: list[str]
    devices: list[str]
    graph_row: np.ndarray  # [M] int
    device_row: np.ndarray  # [M] int
    target: np.ndarray  # [M] float64, ms
    #: latency records left out because their graph could not be built (listed in ``bench.failures``)
    n_without_graph: int = 0
    #: records of networks whose output does not depend on their input (tag ``output_cut_off``)
    n_output_cut_off: int = 0


def load_latency_benchmark(name: str, data_root: str | Path | None = None) -> BenchmarkData:
    """``embedded`` (shipped in the package) or any registry benchmark under the data root."""
    if name == "embedded":
        from ledgformer.embedded import load_embedded

        return load_embedded()
    from ledgformer.data.registry import load_benchmark

    return load_benchmark(name, data_root)


def collect_examples(benches: Sequence[BenchmarkData], devices: Sequence[str] | None = None,
                     max_graphs: int | None = None, seed: int = 0,
                     drop_families: Sequence[str] | None = None) -> tuple[Examples, dict[str, ArchGraph]]:
    """Latency records with a graph (and, if given, on ``devices`` and outside ``drop_families``),
    graphs sorted by id."""
    graphs: dict[str, ArchGraph] = {}
    recs: list[Record] = []
    family: dict[str, str] = {}
    names = ", ".join(b.name for b in benches)
    n_without_graph = n_cut_off = 0
    for bench in benches:
        for r in bench.records:
            if r.kind != "latency_ms" or r.device is None:
                continue
            if r.tags.get("output_cut_off"):
                n_cut_off += 1
                continue
            if r.graph_id not in bench.graphs:
                n_without_graph += 1
                continue
            if r.graph_id in graphs and graphs[r.graph_id] is not bench.graphs[r.graph_id]:
                raise LedgformerError(f"graph id {r.graph_id!r} appears in two benchmarks ({names}); "
                                      "load them in separate runs")
            graphs[r.graph_id] = bench.graphs[r.graph_id]
            family.setdefault(r.graph_id, str(r.tags.get("family") or bench.name))
            recs.append(r)
    if not recs:
        raise LedgformerError(f"{names}: no latency records with a graph")
    if devices:
        known = sorted({r.device for r in recs if r.device is not None})
        matches = {d: _matching(d, known) for d in devices}
        unknown = [d for d, m in matches.items() if not m]
        if unknown:
            raise LedgformerError(f"data.devices: {', '.join(unknown)} not in {names}; "
                                  f"known: {', '.join(known)}")
        keep = {k for m in matches.values() for k in m}
        recs = [r for r in recs if r.device in keep]
    if drop_families:
        fams = sorted({family[r.graph_id] for r in recs})
        unknown = [f for f in drop_families if f not in fams]
        if unknown:
            raise LedgformerError(f"data.drop_families: {', '.join(unknown)} not in {names}; "
                                  f"families: {', '.join(fams)}")
        dropped = set(drop_families)
        recs = [r for r in recs if family[r.graph_id] not in dropped]
    ids = sorted({r.graph_id for r in recs})
    if max_graphs is not None and max_graphs < len(ids):
        ids = _balanced_subset(ids, [family[g] for g in ids], int(max_graphs), seed)
        keep = set(ids)
        recs = [r for r in recs if r.graph_id in keep]
    devs = sorted({r.device for r in recs if r.device is not None})
    row_of, dev_of = {g: k for k, g in enumerate(ids)}, {d: k for k, d in enumerate(devs)}
    ex = Examples(
        graph_ids=ids, graph_family=[family[g] for g in ids], devices=devs,
        graph_row=np.asarray([row_of[r.graph_id] for r in recs], np.int64),
        device_row=np.asarray([dev_of[r.device] for r in recs], np.int64),
        target=np.asarray([r.target for r in recs], np.float64), n_without_graph=n_without_graph,
        n_output_cut_off=n_cut_off,
    )
    return ex, {g: graphs[g] for g in ids}


def _balanced_subset(ids: list[str], families: list[str], n: int, seed: int) -> list[str]:
    """``n`` ids taken round-robin over the families (sorted), each family in seeded order."""
    if n < 1:
        raise LedgformerError(f"data.max_graphs must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    by_fam: dict[str, list[str]] = {}
    for g, f in zip(ids, families, strict=True):
        by_fam.setdefault(f, []).append(g)
    queues = [list(rng.permutation(by_fam[f])) for f in sorted(by_fam)]
    out: list[str] = []
    while len(out) < n:
        for q in queues:
            if q and len(out) < n:
                out.append(str(q.pop(0)))
    return sorted(out)


def _graph_parts_to_examples(ex: Examples, graph_part: np.ndarray) -> dict[str, list[int]]:
    """Example indices per part from a per-graph label (0 train, 1 valid, 2 test, -1 unused)."""
    lab = graph_part[ex.graph_row]
    return {p: np.flatnonzero(lab == k).tolist() for k, p in enumerate(("train", "valid", "test"))}


def _need(value: Any, key: str, known: Sequence[str], what: str) -> str:
    if value is None:
        raise LedgformerError(f"data.split needs data.{key}; known {what}: {', '.join(known)}")
    if str(value) not in known:
        raise LedgformerError(f"data.{key} {value!r} not found in the data; known {what}: {', '.join(known)}")
    return str(value)


def _matching(pattern: str, names: Sequence[str]) -> list[str]:
    """The names ``pattern`` names: itself if listed, or every match of a glob such as
    ``mmb/*/pixel4|*`` (every setting of one phone)."""
    if any(c in pattern for c in "*?["):
        return [n for n in names if fnmatchcase(n, pattern)]
    return [pattern] if pattern in names else []


def _held_devices(pattern: str | None, devices: Sequence[str], key: str = "test_device") -> list[int]:
    """Indices of the devices ``pattern`` names: one card, or a glob such as ``mmb/*/pixel4|*``
    (every setting of one phone, so the phone itself is unseen, not just one of its settings)."""
    if pattern is not None and any(c in pattern for c in "*?["):
        held = [devices.index(d) for d in _matching(pattern, devices)]
        if not held:
            raise LedgformerError(f"data.{key} pattern {pattern!r} matches no device; devices: "
                                  f"{', '.join(sorted(devices)[:20])}{' ...' if len(devices) > 20 else ''}")
        return held
    return [devices.index(_need(pattern, key, list(devices), "devices"))]


def latency_split(ex: Examples, mode: str, seed: int, *, test_family: str | None = None,
                  valid_family: str | None = None, test_device: str | None = None,
                  valid_device: str | None = None, valid_fraction: float = 0.1,
                  test_fraction: float = 0.2) -> Split:
    """A :class:`Split` of ``ex``'s example indices (graph-level, deterministic from ``seed``)."""
    fams = sorted(set(ex.graph_family))
    n = len(ex.graph_ids)
    graph_part = np.full(n, -1, np.int64)
    params: dict[str, Any] = {"mode": mode, "valid_fraction": valid_fraction}
    if mode == "family":
        test_family = _need(test_family, "test_family", fams, "families")
        params["test_family"] = test_family
        if valid_family is not None:
            valid_family = _need(valid_family, "valid_family", [f for f in fams if f != test_family],
                                 "families")
            params["valid_family"] = valid_family
            for k, f in enumerate(ex.graph_family):
                graph_part[k] = 2 if f == test_family else 1 if f == valid_family else 0
        else:
            gs = family_split(ex.graph_family, test_family, seed, valid_fraction)
            graph_part[gs.train], graph_part[gs.valid], graph_part[gs.test] = 0, 1, 2
    elif mode == "device":
        held = _held_devices(test_device, ex.devices)
        if len(held) == len(ex.devices):
            raise LedgformerError(f"data.split=device: test_device {test_device!r} matches every device "
                                  f"({len(ex.devices)}); nothing is left to train on")
        params["test_device"] = test_device
        params["test_devices"] = [ex.devices[t] for t in held]
        is_test = np.isin(ex.device_row, held)
        if valid_device is not None:
            vheld = _held_devices(valid_device, ex.devices, "valid_device")
            if set(vheld) & set(held) or len(vheld) + len(held) == len(ex.devices):
                raise LedgformerError(f"data.valid_device {valid_device!r} must name devices that are "
                                      f"neither test ({test_device!r}) nor all the remaining ones")
            params["valid_device"] = valid_device
            params["valid_devices"] = [ex.devices[v] for v in vheld]
            in_valid = np.isin(ex.device_row, vheld)
        else:
            on_train = np.unique(ex.graph_row[~is_test])
            n_valid = max(1, round(valid_fraction * on_train.size))
            valid_graphs = np.random.default_rng(seed).permutation(on_train)[:n_valid]
            in_valid = np.isin(ex.graph_row, valid_graphs)
        parts = {"train": np.flatnonzero(~is_test & ~in_valid).tolist(),
                 "valid": np.flatnonzero(~is_test & in_valid).tolist(),
                 "test": np.flatnonzero(is_test).tolist()}
        return _make_split(ex, parts, seed, params)
    elif mode == "random":
        n_test = round(test_fraction * n)
        if not 0 < n_test < n:
            raise LedgformerError(f"data.test_fraction {test_fraction} leaves no test or no train graphs "
                                  f"of {n}")
        params["test_fraction"] = test_fraction
        gs = sample_split(n, n - n_test, seed, valid_fraction=valid_fraction)
        graph_part[gs.train], graph_part[gs.valid], graph_part[gs.test] = 0, 1, 2
    else:
        raise LedgformerError(f"unknown data.split {mode!r}; expected one of: {', '.join(SPLIT_MODES)}")
    return _make_split(ex, _graph_parts_to_examples(ex, graph_part), seed, params)


def _make_split(ex: Examples, parts: dict[str, list[int]], seed: int, params: dict[str, Any]) -> Split:
    for part in ("train", "valid", "test"):
        if not parts[part]:
            raise LedgformerError(f"data.split={params['mode']}: the {part} part is empty "
                                  f"({len(ex.graph_ids)} graphs); use more graphs or another "
                                  "valid_fraction / test_fraction")
    params["graphs"] = {p: sorted({ex.graph_ids[ex.graph_row[i]] for i in idx}) for p, idx in parts.items()}
    held = params.get("test_family") or params.get("test_device") or "random"
    return Split(name=f"latency-{params['mode']}-{held}", seed=seed, params=params, **parts)


def latency_task(cfg: Mapping[str, Any], seed: int) -> LatencyTaskData:
    """The ``latency`` task of ``cfg`` (see the module docstring for the ``data`` keys)."""
    d = cfg["data"]
    names = [d["benchmark"]] if isinstance(d["benchmark"], str) else list(d["benchmark"])
    benches = [load_latency_benchmark(name, d["data_root"]) for name in names]
    ex, graphs = collect_examples(benches, d["devices"], d["max_graphs"], seed, d["drop_families"])
    split = latency_split(ex, str(d["split"]), seed, test_family=d["test_family"],
                          valid_family=d["valid_family"], test_device=d["test_device"],
                          valid_device=d["valid_device"],
                          valid_fraction=float(d["valid_fraction"]), test_fraction=float(d["test_fraction"]))
    encoder = cfg["features"]["encoder"]
    items, table, enc_id = featurize([graphs[g] for g in ex.graph_ids], encoder)
    return LatencyTaskData(
        kind="latency", items=items, graph_ids=ex.graph_ids, text_table=table,
        graph_row=ex.graph_row, device_row=ex.device_row, target=ex.target, devices=ex.devices,
        hw=hardware_tensors(ex.devices, encoder),
        parts={p: np.asarray(getattr(split, p), np.int64) for p in ("train", "valid", "test")},
        encoder_id=enc_id, graph_macs=np.asarray([graphs[g].macs for g in ex.graph_ids], np.float64),
        data_version={"benchmark": "+".join(names), "n_records": int(ex.target.size),
                      "n_graphs": len(ex.graph_ids), "n_records_without_graph": ex.n_without_graph,
                      "n_records_output_cut_off": ex.n_output_cut_off,
                      "split": split.fingerprint()},
        split_json=split.to_json(), graph_family=ex.graph_family,
    )


def split_summary(split_json: str) -> dict[str, Any]:
    """What a latency split held out, and the graph count of each part (for reports)."""
    d = json.loads(split_json)
    p = d["params"]
    held = ("test_family", "valid_family", "test_device", "valid_device")
    return {"mode": p["mode"], **{k: p[k] for k in held if k in p},
            **{f"n_{part}_graphs": len(g) for part, g in p["graphs"].items()}}


__all__ = ["SPLIT_MODES", "Examples", "LatencyTaskData", "collect_examples", "latency_split", "latency_task",
           "load_latency_benchmark", "split_summary"]
