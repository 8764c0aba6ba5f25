"""The official NAS-Bench-101 TFRecord format, read without TensorFlow, on a file written here."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from ledgformer.data.nb101_tfrecord import (
    crc32c,
    decode_model_metrics,
    iter_tfrecord,
    load_nb101_official,
    masked_crc32c,
    module_hash,
    write_tfrecord,
)
from ledgformer.data.registry import NB101_OFFICIAL_FILE
from ledgformer.errors import LedgformerError

# the Inception-like cell of the NAS-Bench-101 README; its hash is the one Google's own tests use
INCEPTION = (
    [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu",
     "maxpool3x3", "output"],
)
INCEPTION_HASH = "28cfc7874f6d200472e1a9dcd8650aa0"
SMALL = ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])


# ---- a minimal protobuf writer (the reverse of what the loader decodes) ----------------------
def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _double(field: int, v: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", v)


def _message(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(body)) + body


def model_metrics(evals: list[tuple[float, float, float, float, float]], params: int) -> bytes:
    body = b"".join(
        _message(1, b"".join(_double(i + 1, v) for i, v in enumerate(ev)) + _message(6, b"/ckpt"))
        for ev in evals
    )
    return body + _varint(2 << 3) + _varint(params) + _double(3, 1234.5)


def row(cell: tuple[list[list[int]], list[str]], epochs: int, val: float, test: float) -> bytes:
    matrix, ops = cell
    evals = [(0.0, 0.0, 0.1, 0.1, 0.1), (epochs / 2, 50.0, 0.8, val - 0.1, test - 0.1),
             (float(epochs), 100.0, 1.0, val, test)]
    metrics = base64.b64encode(model_metrics(evals, 123456)).decode()
    adj = "".join(str(v) for r in matrix for v in r)
    return json.dumps([module_hash(*cell), epochs, adj, ",".join(ops), metrics]).encode()


def test_crc32c_reference_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8


def test_module_hash_matches_official_and_is_invariant() -> None:
    assert module_hash(*INCEPTION) == INCEPTION_HASH
    # renumbering the two parallel branches 1 and 2 gives the same cell, hence the same hash
    m, ops = INCEPTION
    perm = [0, 2, 1, 3, 4, 5, 6]
    swapped = [[m[perm[i]][perm[j]] for j in range(7)] for i in range(7)]
    assert module_hash(swapped, [ops[p] for p in perm]) == INCEPTION_HASH
    other_ops = [*ops[:5], "conv3x3-bn-relu", "output"]  # the pool branch becomes a conv
    assert module_hash(m, other_ops) != INCEPTION_HASH
    # a dangling vertex is pruned away, as ModelSpec does
    dangling = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert module_hash(*SMALL) == module_hash(
        [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]) != module_hash(dangling, SMALL[1])
    with pytest.raises(LedgformerError, match="not connected"):
        module_hash([[0, 0], [0, 0]], ["input", "output"])


def test_protobuf_decoding() -> None:
    got = decode_model_metrics(model_metrics([(108.0, 99.5, 1.0, 0.93, 0.92)], 2694282))
    assert got["trainable_parameters"] == 2694282 and got["total_time"] == 1234.5
    assert got["evaluation_data"] == [{"current_epoch": 108.0, "training_time": 99.5, "train_accuracy": 1.0,
                                       "validation_accuracy": 0.93, "test_accuracy": 0.92,
                                       "checkpoint_path": "/ckpt"}]


def test_official_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))
    path = tmp_path / NB101_OFFICIAL_FILE
    path.parent.mkdir(parents=True)
    rows = [row(INCEPTION, 108, 0.93, 0.92), row(INCEPTION, 108, 0.95, 0.94),
            row(SMALL, 108, 0.80, 0.79), row(SMALL, 36, 0.50, 0.49)]
    write_tfrecord(path, rows)
    assert list(iter_tfrecord(path)) == rows
    data = load_nb101_official(tmp_path)
    by_id = {r.graph_id: r for r in data.records}
    assert set(by_id) == {f"nb101/{INCEPTION_HASH}", f"nb101/{module_hash(*SMALL)}"}
    inc = by_id[f"nb101/{INCEPTION_HASH}"]
    assert inc.kind == "accuracy" and inc.target == pytest.approx(94.0)
    assert inc.tags["repeats"] == 2 and inc.tags["test_accuracy"] == pytest.approx(93.0)
    assert inc.tags["halfway_validation_accuracy"] == pytest.approx(84.0)
    assert inc.tags["training_time"] == 100.0 and inc.tags["params"] == 123456
    assert by_id[f"nb101/{module_hash(*SMALL)}"].target == pytest.approx(80.0)
    assert set(data.graphs) == set(by_id) and not data.failures
    assert load_nb101_official(tmp_path, epochs=36).records[0].target == pytest.approx(50.0)


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.tfrecord"
    write_tfrecord(path, [row(SMALL, 108, 0.8, 0.8)])
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0xFF  # inside the payload
    path.write_bytes(bytes(raw))
    with pytest.raises(LedgformerError, match="bad data checksum"):
        list(iter_tfrecord(path))
    assert len(list(iter_tfrecord(path, verify=False))) == 1
    path.write_bytes(bytes(raw[:30]))
    with pytest.raises(LedgformerError, match="truncated"):
        list(iter_tfrecord(path))
    path.write_bytes(b"not a tfrecord at all")
    with pytest.raises(LedgformerError, match="bad length checksum"):
        list(iter_tfrecord(path))
