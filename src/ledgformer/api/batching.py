"""Batched inference for the user API: featurise once, encode once per graph, read out per device.

:class:`Featurizer` turns graphs into tensors over one growing node-text table whose embeddings
come from the disk cache (``ledgformer.embed``): the language model is loaded only when a text
is missing there. :class:`GraphStore` keeps, per model and graph key, everything that does not
depend on the device, so predicting the same graphs for another device costs only the readout:

* ``value`` mode (no hardware input, e.g. accuracy): the prediction itself;
* ``state`` mode (``shares_graphs`` models with ``encode``/``decode``, i.e. LeDG-Former): the
  states after the device-independent blocks, and the graph tensors for the hardware blocks; with
  late fusion (``hw_layers=0``) only the readout's device-independent parts
  (``late_fusion_parts``), so a device costs one small MLP per node (``late_fusion_readout``);
* ``tensors`` mode (other models): the featurised graph, run through the whole model per device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ledgformer.api.inputs import ModelRef
from ledgformer.embed import Encoder, embed_texts
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import TEXT_VERSION, HardwareCard
from ledgformer.model.features import (
    GraphTensors,
    HardwareBatch,
    TextTable,
    collate,
)


class Featurizer:
    """Graphs -> ``GraphTensors`` over one text table; texts and cards embedded via the disk cache."""

    def __init__(self, encoder: Encoder) -> None:
        from ledgformer.text.templates import TEMPLATE_VERSION

        self.encoder = encoder
        self.texts = TextTable()
        self._namespace = f"tpl{TEMPLATE_VERSION}"  # the namespace training uses (TextTable)
        self._emb = np.zeros((0, encoder.dim), np.float32)
        self._cards: dict[str, np.ndarray] = {}

    def tensors(self, graphs: Sequence[ArchGraph]) -> list[GraphTensors]:
        """Featurise ``graphs`` through the disk cache; their node texts join the table (``table``)."""
        from ledgformer.model.feature_cache import cached_graph_tensors

        return cached_graph_tensors(graphs, self.texts, progress=len(graphs) >= 2000)

    def table(self) -> torch.Tensor:
        """Embeddings of every text seen so far ([V, D]); only new texts are looked up."""
        texts = self.texts.texts()
        if len(texts) > len(self._emb):
            new = embed_texts(texts[len(self._emb):], self.encoder, namespace=self._namespace)
            self._emb = np.concatenate([self._emb, np.asarray(new, np.float32)])
        return torch.from_numpy(self._emb)

    def card_vectors(self, cards: Sequence[HardwareCard]) -> np.ndarray:
        """Text embeddings of the cards ([k, D]), as the training data embedded them."""
        texts = [c.to_text() for c in cards]
        missing = [t for t in dict.fromkeys(texts) if t not in self._cards]
        if missing:
            vecs = embed_texts(missing, self.encoder, namespace=f"card{TEXT_VERSION}")
            self._cards.update(zip(missing, np.asarray(vecs, np.float32), strict=True))
        return np.stack([self._cards[t] for t in texts])

    def hardware(self, cards: Sequence[HardwareCard]) -> HardwareBatch:
        feat = np.stack([c.features() for c in cards]).astype(np.float32)
        return HardwareBatch(torch.from_numpy(self.card_vectors(cards)), torch.from_numpy(feat))


#: attention pairs (graphs x tokens^2) per encoding batch: small batches of big graphs stay in
#: cache (16 NB201 networks of ~220 nodes encode ~4x faster per graph than 256 at once), small
#: graphs (cells) still go thousands at a time
PAIR_BUDGET = 1_000_000


def pair_batches(lengths: Sequence[int], budget: int = PAIR_BUDGET) -> list[list[int]]:
    """Indices grouped by similar length, each group within ``budget`` padded (tokens + 2)^2 pairs."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * (lengths[i] + 2) ** 2 <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class GraphStore:
    """Device-independent results per graph key for one model (see the module docstring)."""

    def __init__(self, model: nn.Module, featurizer: Featurizer, *, needs_hardware: bool,
                 batch_size: int = 512) -> None:
        self.model, self.feat, self.batch_size = model, featurizer, int(batch_size)
        sharing = bool(getattr(model, "shares_graphs", False)) and hasattr(model, "encode") \
            and hasattr(model, "decode")
        self.mode = "value" if not needs_hardware else "state" if sharing else "tensors"
        cfg = getattr(model, "config", None)
        #: late fusion: keep only the readout's device-independent parts (``late_fusion_parts``)
        self.late = self.mode == "state" and getattr(cfg, "hw_layers", None) == 0 \
            and getattr(cfg, "readout", None) == "sum" and hasattr(model, "late_fusion_parts")
        self.values: dict[str, float] = {}
        #: state mode: encode's states [1 + n, d]; late fusion: (graph part [d], node part [n, d])
        self.states: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]] = {}
        self.items: dict[str, GraphTensors] = {}

    def clear(self) -> None:
        self.values.clear()
        self.states.clear()
        self.items.clear()

    def _cached(self, key: str) -> bool:
        if self.mode == "value":
            return key in self.values
        if self.mode == "state":
            return key in self.states and (self.late or key in self.items)
        return key in self.items

    def _n_nodes(self, key: str) -> int:
        if self.mode == "tensors":
            return len(self.items[key])
        state = self.states[key]
        return len(state[1]) if isinstance(state, tuple) else len(state) - 1

    # ---- filling ------------------------------------------------------------------------------
    @torch.inference_mode()
    def ensure(self, refs: Sequence[ModelRef]) -> None:
        """Featurise (and encode) every ref not cached yet, ``batch_size`` graphs at a time (bounded
        memory), encoding similar-sized graphs together in batches of at most ``PAIR_BUDGET`` pairs."""
        todo = list({r.key: r for r in refs if not self._cached(r.key)}.values())
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            items = self.feat.tensors([r.graph() for r in chunk])
            for r in chunk:
                r.release()
            table = self.feat.table()
            if self.mode == "tensors" or (self.mode == "state" and not self.late):
                self.items.update((r.key, it) for r, it in zip(chunk, items, strict=True))
            if self.mode == "tensors":
                continue
            for rows in pair_batches([len(it) for it in items]):
                batch = collate([items[i] for i in rows], table)
                keys = [chunk[i].key for i in rows]
                if self.mode == "value":
                    out = self.model(batch, None).double().numpy()
                    self.values.update(zip(keys, out.tolist(), strict=True))
                    continue
                x = self.model.encode(batch)
                lengths = [len(items[i]) for i in rows]
                if self.late:
                    graph, node = self.model.late_fusion_parts(x, batch.mask)
                    for k, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                        self.states[key] = (graph[k].clone(), node[k, :n].clone())
                else:
                    for k, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                        self.states[key] = x[k, :1 + n].clone()

    # ---- predicting ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, refs: Sequence[ModelRef], hw: HardwareBatch | None) -> np.ndarray:
        """Model-space outputs [len(refs), devices] (one column when ``hw`` is None)."""
        self.ensure(refs)
        keys = [r.key for r in refs]
        if self.mode == "value":
            return np.asarray([self.values[k] for k in keys], np.float64)[:, None]
        assert hw is not None
        uniq = sorted(dict.fromkeys(keys), key=self._n_nodes)  # similar sizes share a chunk
        out = np.empty((len(uniq), len(hw.feat)), np.float64)
        for s in range(0, len(uniq), self.batch_size):
            chunk = uniq[s:s + self.batch_size]
            run = self._chunk(chunk)
            for d in range(len(hw.feat)):
                card = hw.index(torch.full((1 if self.late else len(chunk),), d, dtype=torch.long))
                out[s:s + len(chunk), d] = run(card).double().numpy()
        row = {k: i for i, k in enumerate(uniq)}
        return out[[row[k] for k in keys]]

    def _chunk(self, keys: list[str]) -> Callable[[HardwareBatch], torch.Tensor]:
        """The chunk's device-independent inputs, assembled once; returns the per-device readout."""
        if self.mode == "tensors":
            batch = collate([self.items[k] for k in keys], self.feat.table())
            return lambda hw: self.model(batch, hw)
        lengths = torch.as_tensor([self._n_nodes(k) for k in keys])
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        if self.late:
            parts = [self.states[k] for k in keys]
            graph = torch.stack([g for g, _ in parts])
            node = pad_sequence([n for _, n in parts], batch_first=True)
            return lambda hw: self.model.late_fusion_readout(graph, node, mask, hw)
        x = pad_sequence([self.states[k] for k in keys], batch_first=True)
        batch = collate([self.items[k] for k in keys], self.feat.table())
        return lambda hw: self.model.decode(x, batch, hw)


@torch.inference_mode()
def node_shares(model: nn.Module, item: GraphTensors, table: torch.Tensor,
                hw: HardwareBatch | None) -> np.ndarray:
    """Each node's share of the predicted cost: softmax of the sum readout's node scores."""
    batch = collate([item], table)
    _, score = model.decode_parts(model.encode(batch), batch, hw)
    if score is None:
        raise ValueError("model has no per-node readout")
    return torch.softmax(score[0], dim=0).double().numpy()


__all__ = ["PAIR_BUDGET", "Featurizer", "GraphStore", "node_shares", "pair_batches"]
