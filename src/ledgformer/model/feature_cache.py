"""On-disk cache of featurised graphs: ``graph_tensors`` runs once per graph, not once per run.

Why: featurising HELP's 15,625 NAS-Bench-201 whole networks (~233 nodes each; the O(n^2)
relation matrix dominates) takes minutes, and every training run paid it again, although the
tensors depend only on the graph and on the featurisation code.

*Key of a graph*: BLAKE2b of exactly what featurisation reads: every field of every node in node
order, the edges, and the ``input_shape`` and ``batch_size`` metadata (``graph_id``, ``name`` and
other metadata are never read, so the same network from a benchmark loader and from the user API
share one entry). Not ``ArchGraph.content_hash``: that hash ignores node order (the tensors do not)
and ``raw_op`` (node texts read it), and costs ~100x more. Node digests are memoised per node
object: loaders share identical nodes between graphs, so keying 15,625 networks takes ~1 s.

*Versions*: the folder is ``cache_dir("features", <version>)``; the version hashes
``FORMAT_VERSION``, ``IR_VERSION``, ``TEMPLATE_VERSION``, the feature/relation names and the
source of the featurisation modules, so a bumped version or an edited featuriser reads a new,
empty folder and never a stale tensor.

*Shards*: each write is one ``.npz`` of many graphs (the misses of one call). A shard stores node
*texts*, not text ids (ids belong to one ``TextTable``): cached graphs re-enter the caller's
table in the same order an uncached run would register them, so tensors are identical. Identical
node rows (op, text, numeric features) and relation matrices are stored once (help-nb201: 3.6 M
nodes but 53 distinct rows and 64 distinct matrices), so its 15,625 networks take ~20 MB. Graphs
decoded from one shard share their relation matrices: treat ``GraphTensors`` as read-only.

*Robustness*: a shard is written to a temporary name and ``os.replace``d (all or nothing); an
unreadable shard is reported with a warning, deleted, and its graphs recomputed. Past
``MAX_SHARDS`` shards, one process merges them (skipped while another holds the lock).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from ledgformer.cache import cache_dir
from ledgformer.graph.ir import ArchGraph, Node
from ledgformer.model.features import GRAPH_FEATURES, NODE_FEATURES, RELATIONS, GraphTensors, TextTable

#: bump when the shard layout changes
FORMAT_VERSION = 1
#: merge the shards of a folder into one when it holds more than this
MAX_SHARDS = 8
#: show a progress bar when at least this many graphs must be featurised
PROGRESS_MIN = 2000
#: modules whose source decides the tensors (an edit there must miss the cache)
FEATURE_MODULES = ("ledgformer.model.features", "ledgformer.text.templates", "ledgformer.graph.ops")
_KEY = "S32"
_ARRAYS = ("keys", "offsets", "node_row", "u_op", "u_tid", "u_num", "texts", "rel_id", "rel_off",
           "rel_n", "rels", "glob")
#: dtype kind each array must have ("i" signed int, "f" float, "S" bytes, "U" text)
_KINDS = {"keys": "S", "offsets": "i", "node_row": "i", "u_op": "i", "u_tid": "i", "u_num": "f",
          "texts": "U", "rel_id": "i", "rel_off": "i", "rel_n": "i", "rels": "i", "glob": "f"}


class CorruptShard(ValueError):
    """A shard whose arrays are missing or inconsistent."""


def feature_version() -> str:
    """Hash of every version and source file the featurised tensors depend on."""
    from ledgformer.graph import ir
    from ledgformer.text import templates

    h = hashlib.sha256(json.dumps([FORMAT_VERSION, ir.IR_VERSION, templates.TEMPLATE_VERSION,
                                   NODE_FEATURES, GRAPH_FEATURES, RELATIONS]).encode())
    for name in FEATURE_MODULES:
        h.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def default_folder() -> Path:
    return cache_dir("features", feature_version())


# ---- keys -------------------------------------------------------------------------------------
def _canon(value: Any) -> Any:
    """Exact, hashable form of an attribute value (arrays by their bytes, not their repr)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_canon(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _canon(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    return value


def _node_digest(node: Node) -> bytes:
    fields = (node.op, node.name, node.raw_op, _canon(node.attrs), _canon(node.input_shapes),
              _canon(node.output_shapes), node.macs, node.flops, node.params, node.mem_bytes)
    return hashlib.blake2b(repr(fields).encode(), digest_size=16).digest()


def graph_keys(graphs: Sequence[ArchGraph]) -> list[bytes]:
    """The cache key of each graph (hex, 32 bytes); equal keys mean equal tensors."""
    memo: dict[int, bytes] = {}  # id(node or edge) -> digest; every graph stays alive meanwhile
    keys = []
    for g in graphs:
        try:
            nodes = b"".join(map(memo.__getitem__, map(id, g.nodes)))
            edges = b"".join(map(memo.__getitem__, map(id, g.edges)))
        except KeyError:
            for n in g.nodes:
                memo.setdefault(id(n), _node_digest(n))
            for e in g.edges:
                memo.setdefault(id(e), struct.pack("<qq", *e))
            nodes = b"".join(map(memo.__getitem__, map(id, g.nodes)))
            edges = b"".join(map(memo.__getitem__, map(id, g.edges)))
        head = repr((_canon(g.meta.get("input_shape")), g.meta.get("batch_size"), len(g), len(g.edges)))
        h = hashlib.blake2b(head.encode(), digest_size=16)
        h.update(edges)
        h.update(nodes)
        keys.append(h.hexdigest().encode("ascii"))
    return keys


# ---- shards -----------------------------------------------------------------------------------
@dataclass
class Shard:
    """One shard's arrays; ``text_map`` maps its texts to the caller's table (-1: not yet)."""

    path: Path
    a: dict[str, np.ndarray]
    texts: list[str]
    text_map: np.ndarray
    rels: dict[int, np.ndarray]

    def graph(self, row: int, table: TextTable) -> GraphTensors:
        a = self.a
        idx = a["node_row"][a["offsets"][row]:a["offsets"][row + 1]]
        local = a["u_tid"][idx]
        if (self.text_map[local] < 0).any():  # register new texts in first-appearance order
            new = local[self.text_map[local] < 0]
            _, first = np.unique(new, return_index=True)
            order = new[np.sort(first)]
            self.text_map[order] = table.ids([self.texts[i] for i in order])
        return GraphTensors(op=a["u_op"][idx], num=a["u_num"][idx], text_ids=self.text_map[local],
                            rel=self._rel(int(a["rel_id"][row])), glob=a["glob"][row])

    def _rel(self, k: int) -> np.ndarray:
        if k not in self.rels:
            n, start = int(self.a["rel_n"][k]), int(self.a["rel_off"][k])
            self.rels[k] = self.a["rels"][start:start + n * n].reshape(n, n)
        return self.rels[k]


def _check(a: dict[str, np.ndarray]) -> None:
    """Raise ``CorruptShard`` unless every array has its dtype and every index points inside."""
    g, u, off = len(a["keys"]), len(a["u_op"]), a["offsets"]

    def within(idx: np.ndarray, n: int) -> bool:
        return idx.size == 0 or (int(idx.min()) >= 0 and int(idx.max()) < n)

    checks = (
        all(a[name].dtype.kind == kind for name, kind in _KINDS.items()),
        a["u_op"].dtype == np.int64 and a["u_num"].dtype == np.float32 and a["rels"].dtype == np.int8,
        off.shape == (g + 1,) and off[0] == 0 and bool(np.all(np.diff(off) >= 0)),
        a["node_row"].shape == (int(off[-1]),) and a["glob"].shape == (g, len(GRAPH_FEATURES)),
        a["u_num"].shape == (u, len(NODE_FEATURES)) and a["u_tid"].shape == (u,),
        a["rel_id"].shape == (g,) and a["rel_off"].shape == a["rel_n"].shape,
        int(np.sum(a["rel_n"].astype(np.int64) ** 2)) == a["rels"].size,
    )
    ok = all(checks) and within(a["node_row"], u) and within(a["u_tid"], len(a["texts"]))
    ok = ok and within(a["rel_id"], len(a["rel_n"]))
    # each graph's node count equals the size of its relation matrix
    if not (ok and np.array_equal(np.diff(off), a["rel_n"][a["rel_id"]])):
        raise CorruptShard("inconsistent arrays")


def read_shard(path: Path, want: set[bytes] | None = None) -> Shard | None:
    """Load and check one shard (None if it holds none of ``want``); raises ``CorruptShard``,
    ``OSError``, ``zipfile.BadZipFile`` ... when it is damaged."""
    with np.load(path, allow_pickle=False) as z:
        keys = z["keys"]
        if want is not None and want.isdisjoint(keys.tolist()):
            return None
        a = {"keys": keys, **{name: z[name] for name in _ARRAYS[1:]}}
    _check(a)
    texts = a["texts"].tolist()
    return Shard(path, a, texts, np.full(len(texts), -1, np.int64), {})


def write_shard(folder: Path, keys: Sequence[bytes], items: Sequence[GraphTensors],
                texts: Sequence[str]) -> Path:
    """Write ``items`` (text ids into ``texts``) as one shard, atomically; return its path."""
    op = np.concatenate([g.op for g in items]) if items else np.zeros(0, np.int64)
    tid = np.concatenate([g.text_ids for g in items]) if items else np.zeros(0, np.int64)
    num = (np.concatenate([g.num for g in items]) if items
           else np.zeros((0, len(NODE_FEATURES)), np.float32))
    used, local = np.unique(tid, return_inverse=True)
    row_t = np.dtype([("op", np.int64), ("tid", np.int64), ("num", np.float32, (len(NODE_FEATURES),))])
    rows = np.empty(op.size, row_t)
    rows["op"], rows["tid"], rows["num"] = op, local, num
    uniq, node_row = np.unique(rows.view(np.dtype((np.void, row_t.itemsize))), return_inverse=True)
    uniq = uniq.view(row_t)
    rel_index: dict[bytes, int] = {}
    rel_id, rel_blobs, rel_n = [], [], []
    for g in items:
        blob = np.ascontiguousarray(g.rel, np.int8).tobytes()
        k = rel_index.setdefault(blob, len(rel_index))
        if k == len(rel_blobs):
            rel_blobs.append(blob)
            rel_n.append(len(g))
        rel_id.append(k)
    sizes = np.asarray([len(g) for g in items], np.int64)
    arrays = {
        "keys": np.asarray(keys, _KEY), "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "node_row": node_row.reshape(-1).astype(np.int32), "u_op": uniq["op"], "u_tid": uniq["tid"],
        "u_num": uniq["num"], "texts": np.asarray([texts[i] for i in used], dtype=str),
        "rel_id": np.asarray(rel_id, np.int32), "rel_n": np.asarray(rel_n, np.int64),
        "rel_off": np.cumsum(np.square(rel_n, dtype=np.int64)) - np.square(rel_n, dtype=np.int64),
        "rels": np.frombuffer(b"".join(rel_blobs), np.int8),
        "glob": (np.stack([g.glob for g in items]) if items
                 else np.zeros((0, len(GRAPH_FEATURES)), np.float32)).astype(np.float32),
    }
    name = f"{uuid.uuid4().hex}"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    final = folder / f"{name}.npz"
    os.replace(tmp, final)
    return final


def _shards(folder: Path, want: set[bytes] | None = None) -> Iterator[Shard]:
    """Readable shards of ``folder`` (holding some of ``want``); a damaged one is reported,
    deleted and skipped."""
    for path in sorted(folder.glob("*.npz")):
        try:
            shard = read_shard(path, want)
            if shard is not None:
                yield shard
        except FileNotFoundError:  # merged away by a concurrent compaction: its rows are elsewhere
            continue
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(f"feature cache: unreadable file {path} ({type(exc).__name__}: {exc}); "
                          "deleting it, its graphs are featurised again", stacklevel=3)
            with suppress(OSError):
                path.unlink()


def compact(folder: Path) -> bool:
    """Merge all shards of ``folder`` into one unless another process is at it; True if done."""
    lock = FileLock(str(folder / ".compact.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        shards = list(_shards(folder))
        if len(shards) < 2:
            return False
        table, keys, items, seen = TextTable(), [], [], set()
        for sh in shards:
            for row, key in enumerate(sh.a["keys"].tolist()):
                if key not in seen:
                    seen.add(key)
                    keys.append(key)
                    items.append(sh.graph(row, table))
        write_shard(folder, keys, items, table.texts())
        for sh in shards:
            with suppress(FileNotFoundError):
                sh.path.unlink()
        return True
    finally:
        lock.release()


def cached_graph_tensors(graphs: Sequence[ArchGraph], table: TextTable, *, folder: Path | None = None,
                         progress: bool = True, keys: Sequence[bytes] | None = None) -> list[GraphTensors]:
    """``[graph_tensors(g, table) for g in graphs]``, read from the disk cache where possible.

    Texts enter ``table`` in the same order as the uncached loop, so the result is identical;
    the graphs not found are featurised and written as one new shard. ``keys``: the graphs'
    ``graph_keys`` when the caller has them already (hashing a whole network costs ~ms).
    """
    from ledgformer.model.features import graph_tensors

    folder = folder or default_folder()
    keys = list(keys) if keys is not None else graph_keys(graphs)
    want = set(keys)
    where: dict[bytes, tuple[Shard, int]] = {}
    for sh in _shards(folder, want):
        for row, key in enumerate(sh.a["keys"].tolist()):
            if key in want and key not in where:
                where[key] = (sh, row)
        if len(where) == len(want):
            break
    n_miss = sum(k not in where for k in keys)
    out: list[GraphTensors] = []
    miss_keys: list[bytes] = []
    miss_items: list[GraphTensors] = []
    computed: dict[bytes, GraphTensors] = {}
    show = progress and n_miss >= PROGRESS_MIN
    from rich.progress import Progress  # here: importing rich costs a warm `predict` ~20 ms

    with Progress(transient=True, disable=not show) as bar:
        task = bar.add_task(f"featurising {n_miss} graphs ({len(graphs) - n_miss} cached)", total=n_miss)
        for g, key in zip(graphs, keys, strict=True):
            if key in where:
                sh, row = where[key]
                out.append(sh.graph(row, table))
            elif key in computed:  # a repeated graph: same tensors, its texts are in the table
                out.append(computed[key])
            else:
                item = graph_tensors(g, table)
                computed[key] = item
                miss_keys.append(key)
                miss_items.append(item)
                out.append(item)
                bar.advance(task)
    if miss_items:
        write_shard(folder, miss_keys, miss_items, table.texts())
        if len(list(folder.glob("*.npz"))) > MAX_SHARDS:
            compact(folder)
    return out


__all__ = ["FEATURE_MODULES", "FORMAT_VERSION", "MAX_SHARDS", "CorruptShard", "Shard", "cached_graph_tensors",
           "compact", "default_folder", "feature_version", "graph_keys", "read_shard", "write_shard"]
