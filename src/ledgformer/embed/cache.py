"""On-disk embedding cache: each unique text is embedded once per (encoder, namespace).

Layout: ``cache_dir("embeddings", <encoder>-<hash of encoder.id and namespace>)`` holds shard
files ``*.npy``, each one structured array of ``(key, vec)`` rows, ``key`` = hex BLAKE2b-128 of the
text (hex, because numpy strips trailing NUL bytes from raw byte strings). Why this layout:

* fast at ~100k texts: a lookup memory-maps the shards and indexes the key column (no parsing);
* crash-safe: a shard is written to a temporary name, fsynced and ``os.replace``d into place, so
  an interrupted run leaves either the whole shard or none (stray ``*.tmp`` files are ignored);
* multi-process safe without a writer lock: every write is a new uniquely named shard; only the
  occasional compaction (merge many shards into one) takes a lock, and skips if it is held.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ledgformer.cache import cache_dir
from ledgformer.embed.encoders import Encoder, get_encoder

#: misses embedded (and written as one shard) per step; also the progress bar's step
CHUNK = 2048
#: compact when a cache folder holds more shards than this
MAX_SHARDS = 16
#: show a progress bar only when at least this many texts must be embedded
PROGRESS_MIN = 256
#: temp files older than this are left over from killed runs (removed by ``compact``)
STALE_TMP_S = 3600
_KEY = "S32"


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest().encode("ascii")


def store_dir(encoder: Encoder, namespace: str = "") -> Path:
    """The cache folder of ``encoder`` + ``namespace`` (e.g. ``"templates-v1"``)."""
    digest = hashlib.sha256(f"{encoder.id}\0{namespace}".encode()).hexdigest()[:16]
    path = cache_dir("embeddings", f"{encoder.name}-{digest}")
    meta = path / "meta.json"
    if not meta.exists():  # for people browsing the cache; never read back
        info = {"encoder": encoder.id, "namespace": namespace, "dim": encoder.dim}
        _atomic_write_text(meta, json.dumps(info))
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _dtype(dim: int) -> np.dtype:
    return np.dtype([("key", _KEY), ("vec", np.float32, (dim,))])


def write_shard(folder: Path, keys: Sequence[bytes], vecs: np.ndarray) -> Path:
    """Write one shard atomically (temp file, fsync, ``os.replace``); return its path."""
    rows = np.empty(len(keys), _dtype(vecs.shape[1]))
    rows["key"] = np.asarray(keys, dtype=_KEY)
    rows["vec"] = vecs
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, rows)
        fh.flush()
        os.fsync(fh.fileno())
    final = folder / f"{name}.npy"
    os.replace(tmp, final)
    return final


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npy"))


def _read_shards(folder: Path, dim: int) -> Iterator[tuple[Path, np.ndarray]]:
    """Memory-mapped shards of the right layout; a damaged one is reported and skipped."""
    want = _dtype(dim)
    for path in _shards(folder):
        try:
            rows = np.load(path, mmap_mode="r")
        except FileNotFoundError:  # merged away by a concurrent compaction: its rows are elsewhere
            continue
        except (ValueError, OSError, EOFError) as exc:
            warnings.warn(f"embedding cache: ignoring unreadable shard {path} ({exc})", stacklevel=3)
            continue
        if rows.dtype != want:
            warnings.warn(f"embedding cache: ignoring shard {path} with layout {rows.dtype}", stacklevel=3)
            continue
        yield path, rows


def lookup(folder: Path, keys: Sequence[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vecs [n, dim], found [n] bool)`` for ``keys`` from every shard in ``folder``."""
    vecs = np.zeros((len(keys), dim), np.float32)
    found = np.zeros(len(keys), bool)
    want = {k: i for i, k in enumerate(keys)}
    for _, rows in _read_shards(folder, dim):
        if not want:
            break
        src: list[int] = []
        dst: list[int] = []
        for row, k in enumerate(rows["key"].tolist()):
            i = want.pop(k, None)
            if i is not None:
                src.append(row)
                dst.append(i)
        if src:
            vecs[dst] = rows["vec"][src]
            found[dst] = True
    return vecs, found


def compact(folder: Path, dim: int) -> bool:
    """Merge all shards into one (deduplicated) if no other process is compacting; True if done."""
    lock = FileLock(str(folder / ".compact.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        shards = list(_read_shards(folder, dim))
        if len(shards) < 2:
            return False
        rows = np.concatenate([np.asarray(r) for _, r in shards])
        _, first = np.unique(rows["key"], return_index=True)
        write_shard(folder, rows["key"][np.sort(first)].tolist(), rows["vec"][np.sort(first)])
        stale = [p for p in folder.glob(".*.tmp") if _age(p) > STALE_TMP_S]
        for path in [p for p, _ in shards] + stale:
            with suppress(FileNotFoundError):
                path.unlink()
        return True
    finally:
        lock.release()


def _age(path: Path) -> float:
    """Seconds since ``path`` was modified (0 if it vanished: another process renamed it)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def embed_texts(
    texts: Sequence[str],
    encoder: Encoder | str,
    *,
    namespace: str = "",
    cache: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings of ``texts`` (float32 ``[len(texts), dim]``, input order), cached on disk.

    Texts are deduplicated; only those missing from the cache of (``encoder.id``, ``namespace``)
    are embedded, in chunks, each chunk saved as soon as it is done (an interrupted run keeps its
    finished chunks). Pass the template version as ``namespace`` (e.g. ``f"tpl{TEMPLATE_VERSION}"``)
    so texts from an older template set never mix with new ones.
    """
    enc = get_encoder(encoder) if isinstance(encoder, str) else encoder
    unique = list(dict.fromkeys(texts))
    index = {t: i for i, t in enumerate(unique)}
    if not cache:
        vecs = _encode(enc, unique, progress)
    else:
        folder = store_dir(enc, namespace)
        keys = [text_key(t) for t in unique]
        vecs, found = lookup(folder, keys, enc.dim)
        missing = np.flatnonzero(~found)
        if len(missing):
            miss_texts = [unique[i] for i in missing]
            for start, chunk in _chunks(enc, miss_texts, progress):
                rows = missing[start:start + len(chunk)]
                vecs[rows] = chunk
                write_shard(folder, [keys[i] for i in rows], chunk)
            if len(_shards(folder)) > MAX_SHARDS:
                compact(folder, enc.dim)
    return vecs[[index[t] for t in texts]] if len(texts) else np.zeros((0, enc.dim), np.float32)


def _encode(enc: Encoder, texts: list[str], progress: bool) -> np.ndarray:
    parts = [chunk for _, chunk in _chunks(enc, texts, progress)]
    return np.concatenate(parts) if parts else np.zeros((0, enc.dim), np.float32)


def _chunks(enc: Encoder, texts: list[str], progress: bool) -> Iterator[tuple[int, np.ndarray]]:
    """``(offset, vecs)`` per chunk of ``CHUNK`` texts, with a progress bar for big jobs."""
    starts = range(0, len(texts), CHUNK)
    if not (progress and len(texts) >= PROGRESS_MIN):
        for s in starts:
            yield s, _checked(enc, texts[s:s + CHUNK])
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"embedding {len(texts)} texts ({enc.name})", total=len(texts))
        for s in starts:
            chunk = texts[s:s + CHUNK]
            yield s, _checked(enc, chunk)
            bar.advance(task, len(chunk))


def _checked(enc: Encoder, texts: list[str]) -> np.ndarray:
    vecs = np.asarray(enc.encode(texts), dtype=np.float32)
    if vecs.shape != (len(texts), enc.dim):
        raise ValueError(f"encoder {enc.id} returned shape {vecs.shape}, expected ({len(texts)}, {enc.dim})")
    return vecs


__all__ = ["CHUNK", "compact", "embed_texts", "lookup", "store_dir", "text_key", "write_shard"]
