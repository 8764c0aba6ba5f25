"""The official NAS-Bench-101 file (``nasbench_only108.tfrecord``), read without TensorFlow.

TFRecord framing: ``uint64 length | uint32 masked crc32c(length) | data | uint32 masked
crc32c(data)`` (little endian). Each record is the JSON list ``[module_hash, epochs,
raw_adjacency, raw_operations, raw_metrics]`` where ``raw_metrics`` is a base64 serialised
``nasbench.ModelMetrics`` protobuf (google-research/nasbench, ``lib/model_metrics.proto``); its
wire format is decoded here by hand for the fields the official ``api.py`` reads: the trainable
parameter count and, per evaluation, training time and train/validation/test accuracy.
``evaluation_data[1]`` is the halfway point of training, ``evaluation_data[2]`` the end.

Ids are ``nb101/<module hash>``: the official isomorphism-invariant MD5 hash, which
``module_hash`` recomputes from a cell (so NASLib's cells get the same ids).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.data.registry import NB101_OFFICIAL_FILE
from ledgformer.errors import LedgformerError

#: the official operation order of ``config['available_ops']`` (labels of the module hash)
AVAILABLE_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses (pure Python: ~10 MB/s)."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def iter_tfrecord(path: Path, verify: bool = True) -> Iterator[bytes]:
    """Yield the payloads of a TFRecord file; length CRCs always, data CRCs if ``verify``."""
    with open(path, "rb") as fh:
        offset = 0
        while header := fh.read(12):
            if len(header) < 12:
                raise LedgformerError(f"{path}: truncated TFRecord header at byte {offset}")
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            if struct.unpack("<I", header[8:])[0] != masked_crc32c(length_bytes):
                raise LedgformerError(f"{path}: bad length checksum at byte {offset} (not a TFRecord?)")
            data = fh.read(length)
            footer = fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise LedgformerError(f"{path}: truncated TFRecord at byte {offset}")
            if verify and struct.unpack("<I", footer)[0] != masked_crc32c(data):
                raise LedgformerError(f"{path}: bad data checksum in the record at byte {offset}")
            offset += 16 + length
            yield data


def write_tfrecord(path: Path, payloads: Iterable[bytes]) -> None:
    """Write payloads with TFRecord framing (for tests and for exporting subsets)."""
    with open(path, "wb") as fh:
        for data in payloads:
            length = struct.pack("<Q", len(data))
            fh.write(length + struct.pack("<I", masked_crc32c(length)))
            fh.write(data + struct.pack("<I", masked_crc32c(data)))


# ---- protobuf wire format ------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise LedgformerError("protobuf: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, raw value) of every field: ints, 8/4-byte and length blobs."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise LedgformerError(f"protobuf: unsupported wire type {wire} (field {field})")
        if pos > len(buf):
            raise LedgformerError(f"protobuf: field {field} runs past the end of the message")
        yield field, wire, value


def _number(wire: int, value: Any) -> float:
    if wire == 1:
        return struct.unpack("<d", value)[0]
    if wire == 5:
        return struct.unpack("<f", value)[0]
    return float(value)


_EVAL_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy",
                4: "validation_accuracy", 5: "test_accuracy"}


def decode_model_metrics(buf: bytes) -> dict[str, Any]:
    """``ModelMetrics`` -> {"evaluation_data": [{...}], "trainable_parameters", "total_time"}."""
    out: dict[str, Any] = {"evaluation_data": [], "trainable_parameters": 0, "total_time": 0.0}
    for field, wire, value in parse_fields(buf):
        if field == 1 and wire == 2:
            ev: dict[str, Any] = {}
            for f, w, v in parse_fields(value):
                if f in _EVAL_FIELDS:
                    ev[_EVAL_FIELDS[f]] = _number(w, v)
                elif f == 6 and w == 2:
                    ev["checkpoint_path"] = v.decode("utf-8", "replace")
            out["evaluation_data"].append(ev)
        elif field == 2 and wire == 0:
            out["trainable_parameters"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3:
            out["total_time"] = _number(wire, value)
    return out


# ---- cells and their official hash ---------------------------------------------------------
def prune(matrix: list[list[int]], ops: list[str]) -> tuple[list[list[int]], list[str]] | None:
    """Drop vertices not on an input->output path (as ``ModelSpec._prune``); None if disconnected."""
    n = len(ops)

    def reach(start: int, forward: bool) -> set[int]:
        seen, frontier = {start}, [start]
        while frontier:
            top = frontier.pop()
            for v in range(n):
                edge = matrix[top][v] if forward else matrix[v][top]
                if edge and v not in seen:
                    seen.add(v)
                    frontier.append(v)
        return seen

    keep = sorted(reach(0, True) & reach(n - 1, False))
    if len(keep) < 2 or keep[0] != 0 or keep[-1] != n - 1:
        return None
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def module_hash(matrix: list[list[int]], ops: list[str]) -> str:
    """The official NAS-Bench-101 module hash of a (pruned) cell (``graph_util.hash_module``)."""
    pruned = prune(matrix, ops)
    if pruned is None:
        raise LedgformerError("NAS-Bench-101 cell: the input is not connected to the output")
    m, o = pruned
    n = len(o)
    labels = [-1] + [AVAILABLE_OPS.index(op) for op in o[1:-1]] + [-2]
    in_edges = [sum(m[i][j] for i in range(n)) for j in range(n)]
    out_edges = [sum(m[i]) for i in range(n)]
    hashes = [hashlib.md5(str(h).encode()).hexdigest() for h in zip(out_edges, in_edges, labels, strict=True)]
    for _ in range(n):
        hashes = [
            hashlib.md5(("".join(sorted(hashes[w] for w in range(n) if m[w][v])) + "|"
                         + "".join(sorted(hashes[w] for w in range(n) if m[v][w])) + "|"
                         + hashes[v]).encode()).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


@dataclass(frozen=True)
class NB101Row:
    """One training run of one cell, as stored in the official file."""

    module_hash: str
    epochs: int
    matrix: list[list[int]]
    ops: list[str]
    metrics: dict[str, Any]


def parse_row(payload: bytes) -> NB101Row:
    try:
        module, epochs, raw_adj, raw_ops, raw_metrics = json.loads(payload.decode("utf-8"))
        ops = raw_ops.split(",")
        n = len(ops)
        if len(raw_adj) != n * n:
            raise ValueError(f"adjacency of {len(raw_adj)} entries for {n} operations")
        matrix = [[int(raw_adj[i * n + j]) for j in range(n)] for i in range(n)]
        metrics = decode_model_metrics(base64.b64decode(raw_metrics))
    except (ValueError, TypeError, UnicodeDecodeError) as err:
        raise LedgformerError(f"NAS-Bench-101 record is malformed: {err}") from err
    return NB101Row(module, int(epochs), matrix, ops, metrics)


def load_nb101_official(root: Path, epochs: int = 108, with_graphs: bool = True,
                        verify: bool = True) -> BenchmarkData:
    """Per cell: mean final validation accuracy (%) over the repeats at ``epochs`` epochs."""
    path = root / NB101_OFFICIAL_FILE
    runs: dict[str, list[dict[str, Any]]] = {}
    cells: dict[str, tuple[list[list[int]], list[str], int]] = {}
    for payload in iter_tfrecord(path, verify=verify):
        row = parse_row(payload)
        if row.epochs != epochs:
            continue
        evals = row.metrics["evaluation_data"]
        if len(evals) < 3:
            raise LedgformerError(f"{path}: {row.module_hash} has {len(evals)} evaluations, expected 3")
        runs.setdefault(row.module_hash, []).append({"half": evals[1], "final": evals[2]})
        cells.setdefault(row.module_hash, (row.matrix, row.ops, row.metrics["trainable_parameters"]))
    if not runs:
        raise LedgformerError(f"{path}: no record trained for {epochs} epochs")
    records = []
    for h, reps in runs.items():
        def mean(stage: str, key: str, reps: list[dict[str, Any]] = reps) -> float:
            return fmean(r[stage].get(key, 0.0) for r in reps)
        records.append(Record(f"nb101/{h}", 100 * mean("final", "validation_accuracy"), "accuracy", None, {
            "dataset": "cifar10", "epochs": epochs, "repeats": len(reps),
            "test_accuracy": 100 * mean("final", "test_accuracy"),
            "halfway_validation_accuracy": 100 * mean("half", "validation_accuracy"),
            "training_time": mean("final", "training_time"), "params": cells[h][2],
        }))
    graphs, failures = {}, {}
    if with_graphs:
        from ledgformer.data.graph_cache import cached_graphs
        from ledgformer.spaces import nb101

        items = {f"nb101/{h}": (m, o) for h, (m, o, _) in cells.items()}
        graphs, failures = cached_graphs("nb101-official-cells", [nb101], items,
                                         lambda mo: nb101.cell_graph(*mo))
    return BenchmarkData("nb101-official", graphs, records,
                         meta={"source": str(path), "epochs": epochs, "target": "validation accuracy %"},
                         failures=failures)


__all__ = [
    "NB101Row", "crc32c", "decode_model_metrics", "iter_tfrecord", "load_nb101_official",
    "masked_crc32c", "module_hash", "parse_fields", "parse_row", "prune", "write_tfrecord",
]
