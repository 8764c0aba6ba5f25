"""The encoding disk cache and the inference fast path of ``LeDGFormer.encode`` (tiny models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ledgformer.api import Predictor
from ledgformer.api.batching import pair_batches
from ledgformer.hardware import FEATURE_NAMES
from ledgformer.model import encoding_cache
from ledgformer.model.encoding_cache import EncodingStore, KeyIndex, model_key
from ledgformer.model.features import HardwareBatch, TextTable, collate, graph_tensors
from ledgformer.model.ledgformer import LeDGFormer
from ledgformer.spaces import nb201

TINY = {"d_model": 16, "n_layers": 2, "n_heads": 2, "dyn_rank": 4}
CARD = "help/pixel3"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LEDGFORMER_ENCODING_CACHE", raising=False)


def reference_encode(model: LeDGFormer, batch) -> torch.Tensor:
    """``encode`` as before the fast path: each block gathers its table and adds the padding."""
    x = torch.cat([(model.glob_tok + model.glob_mlp(batch.glob))[:, None], model.node_tokens(batch)], 1)
    rel, key_pad = model._sequence_rel(batch, 1)
    n_pre = model.config.n_layers - (model.config.hw_layers if model.has_hw else 0)
    for blk in model.blocks[:n_pre]:
        x = blk(x, rel, key_pad)
    return x


def mixed_batch(text_dim: int, form: str = "network"):
    """Graphs of different sizes (padding inside the batch), random text embeddings."""
    archs = nb201.all_arch_strings()[::3000][:3]
    build = nb201.network_graph if form == "network" else nb201.cell_graph
    graphs = [build(a) for a in archs] + ([nb201.cell_graph(archs[0])] if form == "network" else [])
    table = TextTable()
    items = [graph_tensors(g, table) for g in graphs]
    torch.manual_seed(1)
    return collate(items, torch.randn(len(table.texts()), text_dim))


@pytest.mark.parametrize("dynamic", [True, False])
def test_fast_encode_is_the_reference(dynamic: bool) -> None:
    torch.manual_seed(0)
    model = LeDGFormer(task="latency", text_dim=8, hw_text_dim=8, dynamic_bias=dynamic, hw_layers=0,
                       **TINY).eval()
    with torch.no_grad():  # random tables: the padding row and the column order matter
        for blk in model.blocks:
            blk.bias.table.normal_()
    batch = mixed_batch(8)
    with torch.inference_mode():
        fast, ref = model.encode(batch), reference_encode(model, batch)
    assert fast.shape == ref.shape and torch.equal(fast, ref)


def test_shipped_checkpoints_predict_as_before() -> None:
    """Every shipped checkpoint: the fast encode gives the old predictions (rtol 1e-5)."""
    from ledgformer.api.shipped import manifest, shipped_checkpoint
    from ledgformer.train.checkpoint import build_model, read_checkpoint

    for name in manifest():
        ckpt = read_checkpoint(shipped_checkpoint(name)[0])
        model = build_model(ckpt, name).eval()
        cfg = model.config
        batch = mixed_batch(cfg.text_dim, "network" if cfg.task == "latency" else "cell")
        n = len(batch.mask)
        hw = HardwareBatch(torch.randn(n, cfg.hw_text_dim), torch.randn(n, len(FEATURE_NAMES))) \
            if model.has_hw else None
        with torch.inference_mode():
            new = model(batch, hw)
            x = reference_encode(model, batch)
            old = model.decode(x, batch, hw)
        torch.testing.assert_close(new, old, rtol=1e-5, atol=0.0)


def latency_predictor(seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    return Predictor.create("ledgformer", task="latency", encoder="onehot", hw_layers=0, **TINY)


def test_warm_disk_cache_builds_and_encodes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    archs = nb201.all_arch_strings()[:6]
    cold = latency_predictor().predict(archs, CARD)
    fresh = latency_predictor()  # same weights: same model key, as a new process would see them
    monkeypatch.setattr(fresh.model, "encode", lambda batch: pytest.fail("encoded a cached graph"))
    monkeypatch.setattr(nb201, "network_graph", lambda *a, **k: pytest.fail("built a cached graph"))
    warm = fresh.predict(archs, CARD)
    assert np.array_equal(warm, cold)  # the same float16 parts, cold and warm
    other = latency_predictor().predict(archs, "help/raspi4")  # another device: readout only
    assert np.array_equal(fresh.predict(archs, "help/raspi4"), other)


def test_float16_parts_stay_close_to_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    archs = nb201.all_arch_strings()[:6]
    cached = latency_predictor().predict(archs, CARD)
    monkeypatch.setenv("LEDGFORMER_ENCODING_CACHE", "0")
    exact = latency_predictor()
    assert not exact._store.disk
    np.testing.assert_allclose(cached, exact.predict(archs, CARD), rtol=1e-3)


def test_other_weights_miss_the_cache() -> None:
    archs = nb201.all_arch_strings()[:3]
    a, b = latency_predictor(0), latency_predictor(1)
    assert model_key(a.model, "onehot") != model_key(b.model, "onehot")
    a.predict(archs, CARD)
    calls = []
    encode = b.model.encode
    b.model.encode = lambda batch: calls.append(len(batch)) or encode(batch)  # type: ignore[method-assign]
    b.predict(archs, CARD)
    assert sum(calls) == 3
    with torch.no_grad():  # an edited weight is another checkpoint
        b.model.node_head[2].bias.add_(1.0)
    b.clear_cache()
    b.predict(archs, CARD)
    assert sum(calls) == 6


def test_damaged_shard_is_dropped_and_recomputed() -> None:
    archs = nb201.all_arch_strings()[:3]
    cold = latency_predictor().predict(archs, CARD)
    (shard,) = [p for p in Path(encoding_cache.cache_dir("encodings")).rglob("node.npy")]
    shard.write_bytes(b"not an array")
    with pytest.warns(UserWarning, match="unreadable"):
        again = latency_predictor().predict(archs, CARD)
    assert np.array_equal(again, cold) and not shard.parent.exists()


def test_small_shards_are_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding_cache, "MAX_SHARDS", 2)
    store = EncodingStore("k", tmp_path / "enc")
    (tmp_path / "enc").mkdir()
    parts = {}
    for i in range(3):
        key = f"{i:032d}".encode()
        parts[key] = (torch.full((4,), float(i), dtype=torch.float16),
                      torch.full((i + 1, 4), float(i), dtype=torch.float16))
        store.put([key], [parts[key][0]], [parts[key][1]])
    assert len([p for p in (tmp_path / "enc").iterdir() if p.is_dir()]) == 1
    got = EncodingStore("k", tmp_path / "enc").get(list(parts))
    for key, (g, n) in parts.items():
        assert torch.equal(got[key][0], g) and torch.equal(got[key][1], n)


def test_aliases_persist_and_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding_cache, "MAX_SHARDS", 2)
    index = KeyIndex(tmp_path)
    for i in range(4):
        index.add({f"nb201:network:{i}": f"{i:032d}".encode()})
    assert len(list(tmp_path.glob("*.npz"))) <= 2
    assert KeyIndex(tmp_path).get(["nb201:network:3", "nb201:network:9"]) == {
        "nb201:network:3": f"{3:032d}".encode()}


def test_readout_chunks_by_nodes() -> None:
    assert pair_batches([250, 10, 250, 250], 500, pairs=False) == [[1, 0], [2, 3]]
