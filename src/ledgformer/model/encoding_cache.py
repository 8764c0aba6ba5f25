"""On-disk cache of late-fusion graph encodings: a predictor encodes each graph once, not once per process.

Why: ranking HELP's 15,625 NAS-Bench-201 networks with a late-fusion LeDG-Former costs about a
minute of ``encode`` (plus building and hashing the graphs), although everything before the
per-device readout depends only on the weights and the graph. With this cache a fresh process
reads the readout's device-independent parts (``late_fusion_parts``) from disk and pays only the
readout.

*Keys*: an entry is keyed by (``model_key``: SHA-256 of the model class, its config, every weight
and the text encoder's id) and the graph's feature-cache key (``feature_cache.graph_keys``: equal
keys mean equal tensors). Another checkpoint, a fine-tuned or edited weight is another folder; the
folder's ``encoding_version`` also hashes the feature version and the model's source, so an edited
featuriser or ``encode`` never reads a stale entry. Stale folders are not read again; delete the
cache folder (``ledgformer.cache.cache_dir``) to reclaim them.

*Aliases* (``KeyIndex``): NAS-Bench archs are resolved to a canonical ref key (``nb201:network:|...|``)
before any graph is built; the index maps such keys to graph keys, so a warm lookup builds and
hashes no graph. Its version hashes the sources of the graph builders and the feature version.

*Shards*: a shard is a folder of ``.npy`` files (``keys``, ``offsets``, ``graph`` [G, d],
``node`` [sum n, d]), written under a temporary name and renamed (all or nothing), read as memory
maps: a lookup of a few graphs touches only their rows. Parts are stored as float16 (HELP's 15,625
networks x ~235 nodes x d=32: ~235 MB): the store hands out what it stores, and ``GraphStore``
keeps fresh encodings rounded the same way, so cold and warm calls give identical numbers. A
damaged shard is reported, deleted and recomputed; past ``MAX_SHARDS`` shards, the small ones
(< ``BIG_SHARD`` graphs) are merged by one process at a time.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from filelock import FileLock, Timeout

from ledgformer.cache import cache_dir

#: bump when the shard layout changes
FORMAT_VERSION = 1
MAX_SHARDS = 8
#: shards of at least this many graphs are left alone by compaction (no rewriting of big files)
BIG_SHARD = 4096
#: modules whose source decides the encodings beyond the features
MODEL_MODULES = ("ledgformer.model.ledgformer", "ledgformer.model.relation_gather")
#: modules whose source decides which graph a NAS arch key builds
BUILDER_MODULES = ("ledgformer.graph.ir", "ledgformer.graph.ops", "ledgformer.graph.builder",
                   "ledgformer.graph.cost", "ledgformer.spaces.nb201", "ledgformer.spaces.nb101")
#: ref-key prefixes that name a graph built deterministically from the key (see ``api.inputs``)
ALIAS_PREFIXES = ("nb201:", "nb101:")
_ARRAYS = ("keys", "offsets", "graph", "node")


def _sources_hash(parts: list[object], modules: Iterable[str]) -> str:
    from ledgformer.model.feature_cache import feature_version

    h = hashlib.sha256(json.dumps([*parts, feature_version()]).encode())
    for name in modules:
        h.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return h.hexdigest()[:16]


def encoding_version() -> str:
    return _sources_hash([FORMAT_VERSION], MODEL_MODULES)


def alias_version() -> str:
    return _sources_hash([FORMAT_VERSION], BUILDER_MODULES)


def model_key(model: torch.nn.Module, encoder_id: str) -> str:
    """Content hash of what the encodings depend on: class, config, weights, text encoder."""
    cfg = model.config_dict() if hasattr(model, "config_dict") else {}
    h = hashlib.sha256(json.dumps([type(model).__name__, cfg, encoder_id], sort_keys=True,
                                  default=str).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def to_half(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as float16, or None if a value does not fit (then it is kept in float32, uncached)."""
    h = x.to(torch.float16)
    return h if bool(torch.isfinite(h).all()) else None


# ---- aliases ----------------------------------------------------------------------------------
class KeyIndex:
    """Ref key (``nb201:network:...``) -> feature-cache graph key, across processes (npz shards)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or cache_dir("encodings", "aliases", alias_version())
        self._map: dict[str, bytes] = {}
        self._read: set[str] = set()

    def _refresh(self) -> None:
        for path in sorted(self.folder.glob("*.npz")):
            if path.name in self._read:
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    refs, graphs = z["refs"].tolist(), z["graphs"].tolist()
                if len(refs) != len(graphs):
                    raise ValueError("refs and graphs differ in length")
            except FileNotFoundError:  # merged away meanwhile: its rows are in the merged file
                continue
            except (OSError, ValueError, EOFError, KeyError) as exc:
                _drop(path, "alias", exc)
                continue
            self._read.add(path.name)
            for r, g in zip(refs, graphs, strict=True):
                self._map.setdefault(r, g)

    def get(self, refs: Sequence[str]) -> dict[str, bytes]:
        if any(r not in self._map for r in refs):
            self._refresh()
        return {r: self._map[r] for r in refs if r in self._map}

    def add(self, pairs: dict[str, bytes]) -> None:
        new = {r: g for r, g in pairs.items() if self._map.get(r) != g}
        if not new:
            return
        self._map.update(new)
        path = _atomic(self.folder, ".npz", lambda tmp: np.savez(
            tmp, refs=np.asarray(list(new), dtype=str), graphs=np.asarray(list(new.values()), "S32")))
        self._read.add(path.name)
        if len(list(self.folder.glob("*.npz"))) > MAX_SHARDS:
            self._compact()

    def _compact(self) -> None:
        with _try_lock(self.folder) as locked:
            if not locked:
                return
            paths = sorted(self.folder.glob("*.npz"))
            self._read.clear()
            self._refresh()
            merged = _atomic(self.folder, ".npz", lambda tmp: np.savez(
                tmp, refs=np.asarray(list(self._map), dtype=str),
                graphs=np.asarray(list(self._map.values()), "S32")))
            for p in paths:
                with suppress(OSError):
                    p.unlink()
            self._read = {merged.name}


# ---- encodings --------------------------------------------------------------------------------
@dataclass
class Shard:
    """One shard's arrays (memory maps) as tensors; ``rows`` maps its keys to row numbers."""

    path: Path
    offsets: np.ndarray
    graph: torch.Tensor
    node: torch.Tensor
    rows: dict[bytes, int]

    def parts(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph[row], self.node[int(self.offsets[row]):int(self.offsets[row + 1])]


def read_shard(path: Path) -> Shard:
    """Open and check one shard; raises ``ValueError``/``OSError`` when it is damaged. Node rows
    may be wider than graph rows (a roofline model's parts carry each node's MACs and bytes)."""
    a = {name: np.load(path / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in _ARRAYS}
    keys, off, graph, node = a["keys"], a["offsets"], a["graph"], a["node"]
    g = len(keys)
    ok = (keys.dtype == np.dtype("S32") and off.dtype == np.int64 and off.shape == (g + 1,)
          and graph.dtype == np.float16 and node.dtype == np.float16 and graph.ndim == node.ndim == 2
          and graph.shape[0] == g and node.shape[1] >= graph.shape[1] and int(off[0]) == 0
          and int(off[-1]) == node.shape[0] and bool(np.all(np.diff(off) >= 1)))
    if not ok:
        raise ValueError("inconsistent arrays")
    rows = {k: i for i, k in enumerate(keys.tolist())}
    return Shard(path, np.asarray(off), torch.from_numpy(graph), torch.from_numpy(node), rows)


class EncodingStore:
    """Late-fusion parts (graph [d], node [n, d], float16) per graph key, for one ``model_key``."""

    def __init__(self, key: str, folder: Path | None = None) -> None:
        self.key = key
        self.folder = folder or cache_dir("encodings", encoding_version(), key)
        self._where: dict[bytes, Shard] = {}
        self._seen: set[str] = set()

    def _refresh(self) -> None:
        for path in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if path.name in self._seen:
                continue
            try:
                shard = read_shard(path)
            except FileNotFoundError:
                if path.exists():  # a file of the shard is missing: damaged
                    _drop(path, "encoding", FileNotFoundError("missing array"))
                continue
            except (OSError, ValueError, EOFError) as exc:
                _drop(path, "encoding", exc)
                continue
            self._seen.add(path.name)
            for k in shard.rows:
                self._where.setdefault(k, shard)

    def get(self, keys: Sequence[bytes]) -> dict[bytes, tuple[torch.Tensor, torch.Tensor]]:
        """The stored parts of those ``keys`` that are on disk."""
        if any(k not in self._where for k in keys):
            self._refresh()
        out = {}
        for k in keys:
            shard = self._where.get(k)
            if shard is not None:
                out[k] = shard.parts(shard.rows[k])
        return out

    def put(self, keys: Sequence[bytes], graph: Sequence[torch.Tensor], node: Sequence[torch.Tensor]) -> None:
        """Write one shard of float16 parts (``to_half`` results)."""
        if not keys:
            return
        arrays = {"keys": np.asarray(keys, "S32"),
                  "offsets": np.concatenate([[0], np.cumsum([len(n) for n in node])]).astype(np.int64),
                  "graph": torch.stack(list(graph)).numpy(), "node": torch.cat(list(node)).numpy()}
        self._write(arrays)
        if sum(1 for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")) > MAX_SHARDS:
            self._compact()

    def _write(self, arrays: dict[str, np.ndarray]) -> Path:
        tmp = self.folder / f".{uuid.uuid4().hex}.tmp"
        tmp.mkdir()
        for name, arr in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as fh:
                np.save(fh, arr)
                fh.flush()
                os.fsync(fh.fileno())
        final = self.folder / tmp.name[1:-4]
        os.replace(tmp, final)
        return final

    def _compact(self) -> None:
        """Merge the small shards into one (big ones stay: they are never rewritten)."""
        with _try_lock(self.folder) as locked:
            if not locked:
                return
            small = []
            for path in sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                with suppress(OSError, ValueError, EOFError):
                    shard = read_shard(path)
                    if len(shard.rows) < BIG_SHARD:
                        small.append(shard)
            if len(small) < 2:
                return
            keys, graph, node, seen = [], [], [], set()
            for sh in small:
                for k, row in sh.rows.items():
                    if k not in seen:
                        seen.add(k)
                        g, n = sh.parts(row)
                        keys.append(k)
                        graph.append(g)
                        node.append(n)
            self._write({"keys": np.asarray(keys, "S32"),
                         "offsets": np.concatenate([[0], np.cumsum([len(n) for n in node])]).astype(np.int64),
                         "graph": torch.stack(graph).numpy(), "node": torch.cat(node).numpy()})
            for sh in small:  # open memory maps stay valid on POSIX
                with suppress(OSError):
                    shutil.rmtree(sh.path)


# ---- helpers ----------------------------------------------------------------------------------
def _atomic(folder: Path, suffix: str, write: Callable[[BinaryIO], None]) -> Path:
    name = uuid.uuid4().hex
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    final = folder / f"{name}{suffix}"
    os.replace(tmp, final)
    return final


def _drop(path: Path, what: str, exc: BaseException) -> None:
    warnings.warn(f"{what} cache: unreadable {path} ({type(exc).__name__}: {exc}); deleting it, its "
                  "graphs are encoded again", stacklevel=4)
    with suppress(OSError):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@contextmanager
def _try_lock(folder: Path) -> Iterator[bool]:
    """The folder's compaction lock if it is free (True), else False at once (no waiting)."""
    lock = FileLock(str(folder / ".compact.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


__all__ = ["ALIAS_PREFIXES", "BIG_SHARD", "FORMAT_VERSION", "MAX_SHARDS", "EncodingStore", "KeyIndex",
           "Shard", "alias_version", "encoding_version", "model_key", "read_shard", "to_half"]
