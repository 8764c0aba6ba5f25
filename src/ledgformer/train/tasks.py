"""Benchmarks -> training examples: featurised graphs, hardware rows, targets and the split.

A :class:`TaskData` is model-agnostic: examples are ``(graph row, device row, target)`` and
``parts`` holds example indices for ``train`` / ``valid`` / ``test`` (and ``test_all`` where the
protocol has a second test set). Tasks:

* ``accuracy`` (alias ``nb201-accuracy``): NAS cell graphs with an accuracy label
  (NAS-Bench-201 on CIFAR-10/100 or ImageNet16-120, NAS-Bench-101...); ``n_train`` labelled archs
  (valid drawn from them), test = every other arch (``sample_split``).
* ``help-latency``: HELP's NAS-Bench-201 or FBNet whole networks (``help-nb201`` /
  ``help-fbnet``, each with its own device split); train on HELP's training devices
  (``n_train_archs`` archs each, drawn outside the evaluation range), select on the validation
  devices' evaluation sets, test zero-shot on the test devices' 800-arch evaluation sets
  (``test``) and on all 15,625 archs (``test_all``). ``shots`` > 0 adds part ``shots``: K archs
  per test device (``shots_part: valid``: per validation device, to choose a K-shot recipe)
  drawn from HELP's sample pool, outside the evaluation sets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from ledgformer.data.records import BenchmarkData
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.model.features import GraphTensors, HardwareBatch, TextTable, graph_tensors, hardware_tensors
from ledgformer.spaces.proxies import NB201_PROXY_NETWORK

TASKS = ("accuracy", "nb201-accuracy", "help-latency", "latency")


@dataclass
class TaskData:
    kind: str  # "accuracy" or "latency"
    items: list[GraphTensors]
    graph_ids: list[str]
    text_table: torch.Tensor
    graph_row: np.ndarray  # [M] int
    device_row: np.ndarray  # [M] int, -1 = no device
    target: np.ndarray  # [M] float64, the target's unit (ms or %)
    devices: list[str]
    hw: HardwareBatch | None
    parts: dict[str, np.ndarray]
    encoder_id: str
    graph_macs: np.ndarray  # [n graphs] whole-graph MACs (the FLOPs baseline ranks by it)
    data_version: dict[str, Any] = field(default_factory=dict)
    split_json: str = ""

    def devices_by_part(self) -> dict[str, list[str]]:
        """The hardware cards of each part (train / valid / test ...); {} for accuracy tasks."""
        return {part: sorted({self.devices[d] for d in self.device_row[idx] if d >= 0})
                for part, idx in self.parts.items() if self.devices}

    def group(self, idx: np.ndarray) -> list[str]:
        """The device of each example (``"all"`` for accuracy tasks)."""
        return ["all" if d < 0 else self.devices[d] for d in self.device_row[idx]]


def featurize(graphs: Sequence[ArchGraph], encoder: str, progress: bool = True,
              cache: bool = True) -> tuple[list[GraphTensors], torch.Tensor, str]:
    """Tensors of ``graphs``, the embedded text table, and the encoder id.

    ``cache``: read/write the per-graph tensors on disk (``ledgformer.model.feature_cache``;
    identical results, seconds instead of minutes for 15,625 whole networks).
    """
    from ledgformer.embed.encoders import get_encoder
    from ledgformer.model.feature_cache import cached_graph_tensors

    enc = get_encoder(encoder)
    table = TextTable()
    if cache:
        items = cached_graph_tensors(graphs, table, progress=progress)
    else:
        with Progress(transient=True, disable=not progress or len(graphs) < 2000) as bar:
            task = bar.add_task(f"featurising {len(graphs)} graphs", total=len(graphs))
            items = []
            for g in graphs:
                items.append(graph_tensors(g, table))
                bar.advance(task)
    emb = table.embeddings(enc)
    return items, torch.from_numpy(np.asarray(emb, np.float32)), enc.id


def _version(bench: BenchmarkData, split_fp: str) -> dict[str, Any]:
    out = {"benchmark": bench.name, "n_records": len(bench.records), "n_graphs": len(bench.graphs),
           "split": split_fp}
    if bench.meta.get("live_cells"):  # only then, so older checkpoints still match
        out["live_cells"] = True
    if bench.meta.get("none_edges") is False:
        out["none_edges"] = False
    return out


def _with_holdout(split_json: str, parts: Mapping[str, np.ndarray]) -> str:
    """The split file as run: with a holdout part, test lists what was really tested."""
    if "holdout" not in parts:
        return split_json
    d = json.loads(split_json)
    d.update(test=parts["test"].tolist(), holdout=parts["holdout"].tolist())
    return json.dumps(d, sort_keys=True)


def _with_proxies(items: list[GraphTensors], ids: Sequence[str], names: Sequence[str],
                  benchmark: str) -> list[GraphTensors]:
    """``items`` with the zero-cost proxies ``names`` of each arch (ids ``nb201/<index>``) as ``extra``."""
    from ledgformer.spaces.nb201 import all_arch_strings
    from ledgformer.spaces.proxies import proxy_features

    archs = all_arch_strings()
    vals = proxy_features([archs[int(i.rsplit("/", 1)[1])] for i in ids], names, benchmark)
    return [replace(it, extra=v) for it, v in zip(items, vals, strict=True)]


def accuracy_task(cfg: Mapping[str, Any], seed: int) -> TaskData:
    from ledgformer.data.registry import load_benchmark
    from ledgformer.data.splits import sample_split

    d = cfg["data"]
    proxies = list(d["proxies"] or [])
    if proxies and d["benchmark"] not in NB201_PROXY_NETWORK:
        raise LedgformerError(f"data.proxies: zero-cost proxies are defined for "
                              f"{sorted(NB201_PROXY_NETWORK)}, not for data.benchmark={d['benchmark']!r}")
    opts: dict[str, bool] = {}
    for key, default in (("live_cells", False), ("none_edges", True)):
        if bool(d[key]) != default:
            if not str(d["benchmark"]).startswith("nb201-"):
                raise LedgformerError(f"data.{key} applies to NAS-Bench-201 cells (nb201-*), "
                                      f"not to data.benchmark={d['benchmark']!r}")
            opts[key] = bool(d[key])
    bench = load_benchmark(d["benchmark"], d["data_root"], **opts)
    recs = [r for r in bench.records if r.kind == "accuracy"]
    if not recs:
        raise LedgformerError(f"benchmark {bench.name} has no accuracy records")
    missing = [r.graph_id for r in recs if r.graph_id not in bench.graphs]
    if missing:
        raise LedgformerError(f"{bench.name}: {len(missing)} records have no graph, e.g. {missing[0]}")
    split = sample_split(len(recs), int(d["n_train"]), seed, valid_fraction=float(d["valid_fraction"]))
    parts = {k: np.asarray(getattr(split, k), np.int64) for k in ("train", "valid", "test")}
    n_hold = int(d["holdout"])
    if n_hold:
        if not 0 < n_hold < parts["test"].size:
            raise LedgformerError(f"data.holdout must be in [0, {parts['test'].size}) (the test pool), "
                                  f"got {n_hold}")
        pick = np.random.default_rng([seed, 1]).permutation(parts["test"].size)
        parts["holdout"] = np.sort(parts["test"][pick[:n_hold]])
        parts["test"] = np.sort(parts["test"][pick[n_hold:]])
    ids = [r.graph_id for r in recs]
    items, table, enc_id = featurize([bench.graphs[g] for g in ids], cfg["features"]["encoder"])
    if proxies:
        items = _with_proxies(items, ids, proxies, str(d["benchmark"]))
    return TaskData(
        kind="accuracy", items=items, graph_ids=ids, text_table=table,
        graph_row=np.arange(len(recs)), device_row=np.full(len(recs), -1),
        target=np.asarray([r.target for r in recs], np.float64), devices=[], hw=None,
        parts=parts, encoder_id=enc_id,
        graph_macs=np.asarray([bench.graphs[g].macs for g in ids], np.float64),
        data_version={**_version(bench, split.fingerprint()), **({"holdout": n_hold} if n_hold else {}),
                      **({"proxies": proxies} if proxies else {})},
        split_json=_with_holdout(split.to_json(), parts),
    )


def help_latency(cfg: Mapping[str, Any], seed: int) -> TaskData:
    from ledgformer.data import splits
    from ledgformer.data.registry import load_benchmark
    from ledgformer.hardware import card_name

    d = cfg["data"]
    if d["benchmark"] not in splits.HELP_PROTOCOLS:
        raise LedgformerError(f"task help-latency needs a HELP benchmark "
                              f"({', '.join(splits.HELP_PROTOCOLS)}), got data.benchmark={d['benchmark']!r}")
    if d["shots_part"] not in ("test", "valid"):
        raise LedgformerError(f"data.shots_part must be 'test' or 'valid', got {d['shots_part']!r}")
    train_devs, valid_devs, test_devs, pool_size = splits.HELP_PROTOCOLS[d["benchmark"]]
    bench = load_benchmark(d["benchmark"], d["data_root"])
    roles = {
        "train": d["train_devices"] or train_devs,
        "valid": d["valid_devices"] or valid_devs,
        "test": d["test_devices"] or test_devs,
    }
    cards = {role: [card_name("help", k) for k in keys] for role, keys in roles.items()}
    devices = [c for role in ("train", "valid", "test") for c in cards[role]]
    by_dev: dict[str, dict[int, float]] = {c: {} for c in devices}
    ids: dict[int, str] = {}
    for r in bench.records:
        if r.device in by_dev:
            i = int(r.tags["index"])
            by_dev[r.device][i] = r.target
            ids[i] = r.graph_id
    absent = [c for c in devices if not by_dev[c]]
    if absent:
        raise LedgformerError(f"{bench.name}: no records for device(s) {absent}; have {bench.devices()}")
    n = max(ids) + 1
    lat = {c: np.asarray([by_dev[c][i] for i in range(n)]) for c in devices}
    eval_idx = {c: splits.help_eval_indices(lat[c], start=pool_size) for c in devices}
    rng = np.random.default_rng(seed)
    outside = np.setdiff1d(np.arange(n), np.arange(pool_size, pool_size + splits.HELP_NUM_QUERY))
    n_arch = min(int(d["n_train_archs"]), outside.size)
    rows: dict[str, list[tuple[int, int]]] = {"train": [], "valid": [], "test": [], "test_all": [],
                                              "shots": []}
    train_archs = np.sort(rng.choice(outside, n_arch, replace=False))  # shared by the devices
    for c in cards["train"]:
        rows["train"] += [(int(i), devices.index(c)) for i in train_archs]
    for c in cards["valid"]:
        rows["valid"] += [(int(i), devices.index(c)) for i in eval_idx[c]]
    for c in cards["test"]:
        rows["test"] += [(int(i), devices.index(c)) for i in eval_idx[c]]
        if d["eval_all"]:
            rows["test_all"] += [(i, devices.index(c)) for i in range(n)]
    for c in cards[d["shots_part"]] if int(d["shots"]) > 0 else []:
        pool = splits.help_pool_indices(lat[c], count=pool_size)
        shots = splits.kshot_indices(n, int(d["shots"]), seed, exclude=eval_idx[c], pool=pool)
        rows["shots"] += [(int(i), devices.index(c)) for i in shots]
    used = sorted({i for part in rows.values() for i, _ in part})
    row_of = {a: k for k, a in enumerate(used)}
    items, table, enc_id = featurize([bench.graphs[ids[i]] for i in used], cfg["features"]["encoder"])
    graph_row, device_row, target, parts = [], [], [], {}
    for part, pairs in rows.items():
        if not pairs:
            continue
        start = len(target)
        for i, dev in pairs:
            graph_row.append(row_of[i])
            device_row.append(dev)
            target.append(lat[devices[dev]][i])
        parts[part] = np.arange(start, len(target))
    import hashlib

    split_json = json.dumps({"protocol": "help-zero-shot", "seed": seed, "devices": cards,
                             "n_train_archs": n_arch,
                             "train_archs": sorted({i for i, _ in rows["train"]}),
                             "eval_indices": {c: eval_idx[c].tolist()
                                              for c in cards["valid"] + cards["test"]}})
    return TaskData(
        kind="latency", items=items, graph_ids=[ids[i] for i in used], text_table=table,
        graph_row=np.asarray(graph_row), device_row=np.asarray(device_row),
        target=np.asarray(target, np.float64), devices=devices,
        hw=hardware_tensors(devices, cfg["features"]["encoder"]), parts=parts, encoder_id=enc_id,
        graph_macs=np.asarray([bench.graphs[ids[i]].macs for i in used], np.float64),
        data_version=_version(bench, hashlib.sha256(split_json.encode()).hexdigest()[:16]),
        split_json=split_json,
    )


def build_task(cfg: Mapping[str, Any]) -> TaskData:
    name = cfg["task"]
    if name in ("accuracy", "nb201-accuracy"):
        return accuracy_task(cfg, int(cfg["seed"]))
    if name == "help-latency":
        return help_latency(cfg, int(cfg["seed"]))
    if name == "latency":
        from ledgformer.train.latency_task import latency_task

        return latency_task(cfg, int(cfg["seed"]))
    raise LedgformerError(f"unknown task '{name}'; known: {', '.join(TASKS)}")


__all__ = ["TASKS", "TaskData", "accuracy_task", "build_task", "featurize", "help_latency"]
