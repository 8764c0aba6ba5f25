"""Build the graphs of a whole benchmark once, then load them from disk in seconds.

The cache entry of a benchmark is one pickle of ``{id: ArchGraph}`` plus the failures, under
``cache_dir("graphs")``. Its key covers everything that changes the graphs: the benchmark key,
the content of the items to build (arch strings, configs, cells as read from the source files,
so an edited source file changes the key), ``IR_VERSION`` and the source code of the graph
builders (the space module plus ``ledgformer.graph``), so a stale entry is never read.

Identical nodes are shared between the graphs of one benchmark (the 15,625 NAS-Bench-201
networks hold ~3.5 M nodes but only a few thousand distinct ones): memory drops from ~200 KB to
~7 KB per graph and a warm load unpickles 15,625 networks in well under a second. So graphs
returned by the loaders are read-only: ``copy.deepcopy`` one before editing its nodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledgformer.cache import cache_dir
from ledgformer.graph import builder, cost, ir, ops
from ledgformer.graph.ir import IR_VERSION, ArchGraph, Node

Item = TypeVar("Item")


def code_version(modules: Sequence[ModuleType]) -> str:
    """Hash of the source files of ``modules`` and of the IR/cost code every builder relies on."""
    h = hashlib.sha256()
    for mod in [*modules, builder, cost, ir, ops]:
        path = getattr(mod, "__file__", None)
        h.update((mod.__name__ + "\0").encode())
        if path:
            h.update(Path(path).read_bytes())
    return h.hexdigest()


def cache_key(key: str, modules: Sequence[ModuleType], items: Mapping[str, Any]) -> str:
    items_hash = hashlib.sha256(repr(sorted(items.items(), key=lambda kv: kv[0])).encode()).hexdigest()
    blob = json.dumps([key, IR_VERSION, code_version(modules), items_hash])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _cache_file(key: str, digest: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
    return cache_dir("graphs") / f"{safe}-{digest}.pkl"


def intern_nodes(graph: ArchGraph, pool: dict[Any, Any]) -> ArchGraph:
    """Replace ``graph``'s nodes and edges by equal ones already in ``pool`` (shared objects)."""

    def key(n: Node) -> tuple[Any, ...]:
        return (n.name, n.op, n.raw_op, repr(n.attrs), tuple(n.input_shapes), tuple(n.output_shapes),
                n.macs, n.flops, n.params, n.mem_bytes)

    graph.nodes = [pool.setdefault(key(n), n) for n in graph.nodes]
    graph.edges = [pool.setdefault(e, e) for e in graph.edges]
    return graph


def build_graphs(items: Mapping[str, Item], build: Callable[[Item], ArchGraph], desc: str,
                 show_progress: bool = True) -> tuple[dict[str, ArchGraph], dict[str, str]]:
    """Build every item (nodes shared, see module doc); a graph that fails is listed in failures
    with its reason, never dropped."""
    graphs: dict[str, ArchGraph] = {}
    failures: dict[str, str] = {}
    pool: dict[Any, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not show_progress) as progress:
        task = progress.add_task(desc, total=len(items))
        for gid, item in items.items():
            try:
                graph = build(item)
                graph.meta["graph_id"] = gid
                graphs[gid] = intern_nodes(graph, pool)
            except Exception as err:  # any builder error is recorded against its id
                failures[gid] = f"{type(err).__name__}: {err}"
            progress.advance(task)
    return graphs, failures


def cached_graphs(key: str, modules: Sequence[ModuleType], items: Mapping[str, Item],
                  build: Callable[[Item], ArchGraph],
                  show_progress: bool = True) -> tuple[dict[str, ArchGraph], dict[str, str]]:
    """Graphs (and failures) of ``items`` built with ``build``, from the disk cache when fresh."""
    digest = cache_key(key, modules, items)
    path = _cache_file(key, digest)
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                entry = pickle.load(fh)
            return entry["graphs"], entry["failures"]
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, AttributeError):
            path.unlink(missing_ok=True)  # unreadable entry: rebuild below
    graphs, failures = build_graphs(items, build, f"building {len(items)} graphs ({key})", show_progress)
    for old in path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.pkl"):
        old.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump({"graphs": graphs, "failures": failures}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return graphs, failures


__all__ = ["build_graphs", "cache_key", "cached_graphs", "code_version", "intern_nodes"]
