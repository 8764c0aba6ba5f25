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

With late fusion the parts also go to the disk cache (``ledgformer.model.encoding_cache``, keyed
by the weights' hash and the graph's feature key; off with ``LEDGFORMER_ENCODING_CACHE=0``): a
fresh process then ranks a space it has seen without building, featurising or encoding a graph.
The parts are kept rounded to float16 as stored, so cold and warm calls agree exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ledgformer.api.inputs import ModelRef
from ledgformer.embed import Encoder, embed_texts
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import TEXT_VERSION, HardwareCard
from ledgformer.model.encoding_cache import ALIAS_PREFIXES, EncodingStore, KeyIndex, model_key, to_half
from ledgformer.model.feature_cache import graph_keys
from ledgformer.model.features import (
    GraphTensors,
    HardwareBatch,
    TextTable,
    collate,
)


class Featurizer:
    """Graphs -> ``GraphTensors`` over one text table; texts and cards embedded via the disk cache."""

    def __init__(self, encoder: Encoder, proxies: Sequence[str] = (), benchmark: str = "") -> None:
        from ledgformer.text.templates import TEMPLATE_VERSION

        self.encoder = encoder
        #: zero-cost proxies the model reads (its run's ``data.proxies``) on ``benchmark``'s network
        self.proxies, self.benchmark = list(proxies), benchmark
        self.texts = TextTable()
        self._namespace = f"tpl{TEMPLATE_VERSION}"  # the namespace training uses (TextTable)
        self._emb = np.zeros((0, encoder.dim), np.float32)
        self._cards: dict[str, np.ndarray] = {}

    def tensors(self, graphs: Sequence[ArchGraph], keys: Sequence[bytes] | None = None) -> list[GraphTensors]:
        """Featurise ``graphs`` (feature keys ``keys`` if known) through the disk cache; their node
        texts join the table (``table``)."""
        from ledgformer.model.feature_cache import cached_graph_tensors

        return cached_graph_tensors(graphs, self.texts, progress=len(graphs) >= 2000, keys=keys)

    def with_proxies(self, items: list[GraphTensors], refs: Sequence[ModelRef]) -> list[GraphTensors]:
        """``items`` (of ``refs``) with the zero-cost proxy inputs the model reads, if any."""
        if not self.proxies:
            return items
        from ledgformer.spaces.proxies import proxy_features

        bad = [r.label for r in refs if r.arch is None]
        if bad:
            raise LedgformerError(f"this predictor reads the zero-cost proxies {self.proxies} of "
                                  f"NAS-Bench-201 archs (its data.proxies); {bad[0]!r} is not a "
                                  "NAS-Bench-201 arch string or NASLib tuple")
        vals = proxy_features([str(r.arch) for r in refs], self.proxies, self.benchmark)
        return [replace(it, extra=v) for it, v in zip(items, vals, strict=True)]

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
#: cache (2-4 NB201 networks of ~235 tokens encode ~2x faster per graph than 16, and 16 ~4x
#: faster than 256), small graphs (cells) still go thousands at a time
PAIR_BUDGET = 250_000
#: padded nodes per late-fusion readout chunk (~64 NB201 networks: [64, 252, d] stays in cache;
#: 512 at once is ~1.5x slower per graph)
READOUT_NODES = 16_384
#: graphs per shard written to the encoding cache (fewer, bigger shards)
WRITE_EVERY = 4096


def pair_batches(lengths: Sequence[int], budget: int = PAIR_BUDGET, *, pairs: bool = True) -> list[list[int]]:
    """Indices grouped by similar length, each group within ``budget`` padded (tokens + 2)^2 pairs
    (``pairs=False``: padded nodes)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    for i in order:
        cost = (lengths[i] + 2) ** 2 if pairs else max(lengths[i], 1)
        if out and (len(out[-1]) + 1) * cost <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class GraphStore:
    """Device-independent results per graph key for one model (see the module docstring)."""

    def __init__(self, model: nn.Module, featurizer: Featurizer, *, needs_hardware: bool,
                 batch_size: int = 512, disk: bool | None = None) -> None:
        self.model, self.feat, self.batch_size = model, featurizer, int(batch_size)
        sharing = bool(getattr(model, "shares_graphs", False)) and hasattr(model, "encode") \
            and hasattr(model, "decode")
        self.mode = "value" if not needs_hardware else "state" if sharing else "tensors"
        cfg = getattr(model, "config", None)
        #: late fusion: keep only the readout's device-independent parts (``late_fusion_parts``)
        self.late = self.mode == "state" and getattr(cfg, "hw_layers", None) == 0 \
            and getattr(cfg, "readout", None) == "sum" and hasattr(model, "late_fusion_parts")
        #: late fusion parts also on disk (None: unless $LEDGFORMER_ENCODING_CACHE is "0")
        self.disk = self.late and (os.environ.get("LEDGFORMER_ENCODING_CACHE", "1") != "0"
                                   if disk is None else bool(disk))
        self._aliases: KeyIndex | None = None
        self._stores: dict[str, EncodingStore] = {}
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
        memory), encoding similar-sized graphs together in batches of at most ``PAIR_BUDGET`` pairs;
        with the disk cache, refs found there (by alias: no graph built) are only read."""
        todo = list({r.key: r for r in refs if not self._cached(r.key)}.values())
        store = self._store() if self.disk and todo else None
        if store is not None:
            todo = self._read(store, todo)
        pending: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # graph key -> parts to write
        aliases: dict[str, bytes] = {}  # NAS ref key -> graph key, to write
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            graphs = [r.graph() for r in chunk]
            for r in chunk:
                r.release()
            gkeys = None
            if store is not None:
                chunk, graphs, gkeys = self._read_built(store, chunk, graphs, aliases)
                if not chunk:
                    continue
            items = self.feat.with_proxies(self.feat.tensors(graphs, gkeys), chunk)
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
                if not self.late:
                    for k, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                        self.states[key] = x[k, :1 + n].clone()
                    continue
                graph, node = self.model.late_fusion_parts(x, batch)
                for k, (i, n) in enumerate(zip(rows, lengths, strict=True)):
                    parts = (graph[k].clone(), node[k, :n].clone())
                    if store is not None and gkeys is not None and n > 0:
                        half = (to_half(parts[0]), to_half(parts[1]))
                        if half[0] is not None and half[1] is not None:  # else: kept exact, not stored
                            parts = pending[gkeys[i]] = (half[0], half[1])
                    self.states[chunk[i].key] = parts
            if store is not None and len(pending) >= WRITE_EVERY:
                self._write(store, pending, aliases)
        if store is not None:
            self._write(store, pending, aliases)

    def _write(self, store: EncodingStore, pending: dict[bytes, tuple[torch.Tensor, torch.Tensor]],
               aliases: dict[str, bytes]) -> None:
        """Write (and forget) the pending parts and aliases: one shard each."""
        assert self._aliases is not None
        if pending:
            store.put(list(pending), *zip(*pending.values(), strict=True))
        self._aliases.add(aliases)
        pending.clear()
        aliases.clear()

    def _store(self) -> EncodingStore:
        """The disk store of the model's current weights (they may change: ``fit``); a K-shot
        reference blend's are its base model's (``encoder_model``)."""
        key = model_key(getattr(self.model, "encoder_model", self.model), self.feat.encoder.id)
        if key not in self._stores:
            self._stores[key] = EncodingStore(key)
        if self._aliases is None:
            self._aliases = KeyIndex()
        return self._stores[key]

    def _read(self, store: EncodingStore, todo: list[ModelRef]) -> list[ModelRef]:
        """Fill the refs whose alias and encoding are on disk; return the others."""
        assert self._aliases is not None
        known = self._aliases.get([r.key for r in todo if r.key.startswith(ALIAS_PREFIXES)])
        found = store.get(list(dict.fromkeys(known.values())))
        rest = []
        for r in todo:
            parts = found.get(known.get(r.key, b""))
            if parts is None:
                rest.append(r)
            else:
                self.states[r.key] = parts
        return rest

    def _read_built(self, store: EncodingStore, chunk: list[ModelRef], graphs: list[ArchGraph],
                    aliases: dict[str, bytes]) -> tuple[list[ModelRef], list[ArchGraph], list[bytes]]:
        """Key built graphs, note NAS aliases (into ``aliases``), fill those on disk; return the misses."""
        gkeys = graph_keys(graphs)
        aliases.update((r.key, g) for r, g in zip(chunk, gkeys, strict=True)
                       if r.key.startswith(ALIAS_PREFIXES))
        found = store.get(gkeys)
        keep = [i for i, g in enumerate(gkeys) if g not in found]
        for r, g in zip(chunk, gkeys, strict=True):
            if g in found:
                self.states[r.key] = found[g]
        return [chunk[i] for i in keep], [graphs[i] for i in keep], [gkeys[i] for i in keep]

    # ---- predicting ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, refs: Sequence[ModelRef], hw: HardwareBatch | None) -> np.ndarray:
        """Model-space outputs [len(refs), devices] (one column when ``hw`` is None)."""
        self.ensure(refs)
        keys = [r.key for r in refs]
        if self.mode == "value":
            return np.asarray([self.values[k] for k in keys], np.float64)[:, None]
        assert hw is not None
        uniq = list(dict.fromkeys(keys))
        sizes = [self._n_nodes(k) for k in uniq]
        # similar sizes share a chunk; the late readout costs per node, the rest per token pair
        groups = pair_batches(sizes, READOUT_NODES, pairs=False) if self.late else pair_batches(sizes)
        out = np.empty((len(uniq), len(hw.feat)), np.float64)
        for group in groups:
            for s in range(0, len(group), self.batch_size):
                rows = group[s:s + self.batch_size]
                run = self._chunk([uniq[i] for i in rows])
                for d in range(len(hw.feat)):
                    card = hw.index(torch.full((1 if self.late else len(rows),), d, dtype=torch.long))
                    out[rows, d] = run(card).double().numpy()
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
            graphs, nodes = [g for g, _ in parts], [n for _, n in parts]  # float16 with the disk cache
            if len({n.dtype for n in nodes}) > 1:  # a part too large for float16 is kept in float32
                graphs, nodes = [g.float() for g in graphs], [n.float() for n in nodes]
            graph = torch.stack(graphs).float()
            node = pad_sequence(nodes, batch_first=True).float()
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


__all__ = ["PAIR_BUDGET", "READOUT_NODES", "WRITE_EVERY", "Featurizer", "GraphStore", "node_shares",
           "pair_batches"]
