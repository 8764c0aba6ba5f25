"""NASLib's accuracy files: all NAS-Bench-201 cells (3 data sets) and 500 NAS-Bench-101 cells.

NAS-Bench-201: ``naslib/nb201_zen_run/benchmark--nasbench201--<ds>--<K>.json`` (NASLib's
zero-cost run, 250 archs per chunk) give ``val_accuracy``, the 200-epoch validation accuracy
("cifar10_valid_converged" for CIFAR-10) of every arch as a NASLib op-index tuple. Ids are
``nb201/<official index>`` (the same ids as ``help-nb201`` and ``mini-nb201-*``), graphs are the
8-node cells of ``spaces.nb201.cell_graph``.

NAS-Bench-101: ``zc_nasbench101.json`` keys are a 7x7 adjacency (49 values) + 7 NASLib op codes;
ids are ``nb101/<official module hash>`` (the ids of the official file), graphs are the cells
of ``spaces.nb101.cell_graph``. ``samples_nasbench101-cifar10.json`` lists 800 cells without
accuracies (NASLib's zero-cost sample), so it is not a benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.data.registry import NB201_ZEN_CHUNKS
from ledgformer.errors import LedgformerError

if TYPE_CHECKING:
    from ledgformer.graph.ir import ArchGraph


def nb201_id(index: int) -> str:
    """The id of a NAS-Bench-201 arch in every loader: its official index."""
    return f"nb201/{index}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LedgformerError(f"{path}: cannot be read as JSON ({err})") from err


def _parse_tuple(text: str, path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.strip("() ").split(","))
    except ValueError as err:
        raise LedgformerError(f"{path}: architecture '{text}' is not a tuple of integers") from err


def nb201_cell_graphs(arch_strings: dict[str, str], show_progress: bool = True,
                      live: bool = False, none_edges: bool = True) -> tuple[dict, dict]:
    """Cell graphs of NB201 archs (id -> arch string), shared cache across the accuracy sets;
    ``live``: of ``nb201.live_arch`` (dead ops as ``none``), the arch string stays the graph's name;
    ``none_edges=False``: ``none`` ops without edges (``nb201.cell_graph``)."""
    from ledgformer.data.graph_cache import cached_graphs
    from ledgformer.spaces import nb201

    def build(arch: str) -> ArchGraph:
        if not live:
            return nb201.cell_graph(arch, none_edges=none_edges)
        graph = nb201.cell_graph(live_arch := nb201.live_arch(arch), none_edges=none_edges)
        graph.meta.update(name=arch, live_arch=live_arch)
        return graph

    name = "nb201-live-cells" if live else "nb201-cells"
    return cached_graphs(name if none_edges else f"{name}-flow", [nb201], arch_strings, build, show_progress)


def load_nb201_accuracy(root: Path, dataset: str, with_graphs: bool = True,
                        show_progress: bool = True, live_cells: bool = False,
                        none_edges: bool = True) -> BenchmarkData:
    """200-epoch validation accuracy (%) of the 15,625 NB201 archs on ``dataset``; ``live_cells``:
    graphs of ``nb201.live_arch`` (functionally identical cells share one graph); ``none_edges``:
    see ``nb201.cell_graph``."""
    from ledgformer.spaces import nb201

    index = {s: i for i, s in enumerate(nb201.all_arch_strings())}
    records: list[Record] = []
    strings: dict[str, str] = {}
    for k in NB201_ZEN_CHUNKS:
        path = root / "naslib" / "nb201_zen_run" / f"benchmark--nasbench201--{dataset}--{k}.json"
        for row in _read_json(path):
            try:
                arch = nb201.naslib_to_str(_parse_tuple(row["arch"], path))
                acc = float(row["val_accuracy"])
            except (KeyError, TypeError, ValueError) as err:
                raise LedgformerError(f"{path}: entry {row!r:.80} lacks arch/val_accuracy ({err})") from err
            i = index[arch]
            gid = nb201_id(i)
            if gid in strings:
                raise LedgformerError(f"{path}: architecture {arch} appears twice in the {dataset} run")
            strings[gid] = arch
            records.append(Record(gid, acc, "accuracy", None,
                                  {"index": i, "dataset": dataset, "naslib_idx": int(row["idx"])}))
    graphs, failures = nb201_cell_graphs(strings, show_progress, live_cells, none_edges) \
        if with_graphs else ({}, {})
    return BenchmarkData(f"nb201-{dataset}", graphs, records, failures=failures, meta={
        "source": str(root / "naslib" / "nb201_zen_run"), "dataset": dataset,
        "target": "200-epoch validation accuracy %",
        "graphs": "NB201 cells (8 nodes)" + (", dead ops as none" if live_cells else "")
        + ("" if none_edges else ", none ops without edges"),
        "live_cells": live_cells, "none_edges": none_edges})


def load_nb101(root: Path, with_graphs: bool = True, show_progress: bool = True) -> BenchmarkData:
    """The 500 NAS-Bench-101 cells of NASLib's zero-cost file with their CIFAR-10 accuracy (%)."""
    from ledgformer.data.nb101_tfrecord import module_hash
    from ledgformer.spaces import nb101

    path = root / "naslib" / "zc_nasbench101.json"
    try:
        table = _read_json(path)["nasbench101"]["cifar10"]
    except (KeyError, TypeError) as err:
        raise LedgformerError(f"{path}: expected {{'nasbench101': {{'cifar10': ...}}}}") from err
    records: list[Record] = []
    cells: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for key, entry in table.items():
        try:
            matrix, ops = nb101.decode_naslib(key)
            gid = f"nb101/{module_hash(matrix, ops)}"
        except LedgformerError as err:
            failures[key] = str(err)
            continue
        cells[gid] = (matrix, ops)
        records.append(Record(gid, float(entry["val_accuracy"]), "accuracy", None,
                              {"dataset": "cifar10", "naslib_key": key}))
    graphs: dict = {}
    if with_graphs:
        from ledgformer.data.graph_cache import cached_graphs

        graphs, built_failures = cached_graphs("nb101-naslib-cells", [nb101], cells,
                                               lambda mo: nb101.cell_graph(*mo), show_progress)
        failures.update(built_failures)
    return BenchmarkData("nb101-cifar10", graphs, records, failures=failures, meta={
        "source": str(path), "dataset": "cifar10", "target": "validation accuracy % (108 epochs)",
        "graphs": "NB101 cells"})


__all__ = ["load_nb101", "load_nb201_accuracy", "nb201_cell_graphs", "nb201_id"]
