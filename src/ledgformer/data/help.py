"""HELP's measured latencies (HayeonLee/HELP, ``data/``): NAS-Bench-201, FBNet and OFA spaces.

``help/<space>/latency/<device>.pt`` is a list of milliseconds, one per architecture in the
order of the space's architecture list; every file found there is loaded (one hardware card per
file stem: ``help/<stem>``). The suffix ``_N`` of a stem is the batch size of the measurement.

Batch decision: graphs are built once at batch 1 and the batch size lives with the device (the
hardware card of ``help/1080ti_256`` describes a 1080 Ti at batch 256; ``meta["batch_size"]``
maps each card to its batch). Building a graph per batch size would triple the graphs for
the same information, since every cost in a graph scales linearly with the batch.

Graphs: NAS-Bench-201 whole networks at 32x32 with 10 classes (HELP measured the CIFAR
networks), FBNet networks at 32x32 with 100 classes (HW-NAS-Bench's CIFAR-100 space, as
``metainfo.pt`` says), OFA networks at each config's own resolution ``r`` with 1000 classes.
Phone files (``pixel2``, ``samsung_a50``, ``samsung_s7``, ``essential_ph_1``, ...) hold integer
milliseconds: ``meta["integer_ms"]`` lists the cards whose every value is an integer.

NAS-Bench-201 records carry ``tags["output_cut_off"]``: the 341 archs whose ``none`` edges cut the
cell output off its input (``nb201.output_cut_off``). The Raspberry Pi 4 and Pixel 3 files time
most of them at 0.003-0.96 ms (constant folding), GPUs at the full cost of their ops; the
``latency`` task leaves them out, HELP's own protocol (``help-latency``) keeps them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ledgformer.data.naslib import nb201_id
from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError


def torch_load(path: Path) -> Any:
    """``torch.load`` without running arbitrary pickled code (numpy scalars allowed: OFA's ``r``)."""
    import numpy as np
    import torch

    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
               *{type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32")}]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise LedgformerError(f"{path}: cannot be read as a HELP .pt file ({err})") from err


def batch_size(stem: str) -> int:
    """Batch size of a HELP device stem: the ``_N`` suffix, 1 when there is none (phones, FPGA).

    CPU model numbers (``gold_6226``, ``silver_4114``) are not batch sizes: a suffix above 1024 is
    part of the name.
    """
    m = re.search(r"_(\d+)$", stem)
    return int(m.group(1)) if m and int(m.group(1)) <= 1024 else 1


def _plain(value: Any) -> Any:
    """numpy scalars in OFA configs -> Python ints/floats (graph builders and hashing want these)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def help_archs(space: str, folder: Path) -> tuple[list[str], dict[str, Any]]:
    """Ids in HELP's arch order and the builder input of each id (an NB201 arch string, FBNet op
    list or OFA config): what a record's ``graph_id`` stands for, e.g. to hand archs to a Predictor."""
    if space == "nasbench201":
        str2idx: dict[str, int] = torch_load(folder / "str_arch2idx.pt")
        by_index = sorted((i, s) for s, i in str2idx.items())
        if [i for i, _ in by_index] != list(range(len(by_index))):
            raise LedgformerError(f"{folder / 'str_arch2idx.pt'}: indices are not 0..{len(by_index) - 1}")
        ids = [nb201_id(i) for i, _ in by_index]
        return ids, {nb201_id(i): s for i, s in by_index}
    if space == "fbnet":
        meta = torch_load(folder / "metainfo.pt")
        if meta.get("dataset") != "cifar100":
            raise LedgformerError(f"{folder / 'metainfo.pt'}: expected the cifar100 FBNet space, "
                                  f"got {meta.get('dataset')!r}")
        ops = [list(a["arch_str"]) for a in meta["arch"]]
        ids = [f"fbnet/{i}" for i in range(len(ops))]
        return ids, dict(zip(ids, ops, strict=True))
    if space == "ofa":
        configs = [_plain(a) for a in torch_load(folder / "ofa_archs.pt")["arch"]]
        ids = [f"ofa/{i}" for i in range(len(configs))]
        return ids, dict(zip(ids, configs, strict=True))
    raise LedgformerError(f"unknown HELP space '{space}' (expected nasbench201, fbnet or ofa)")


def _builder(space: str) -> tuple[Any, Any]:
    """(space module, function building one graph from its builder input)."""
    if space == "nasbench201":
        from ledgformer.spaces import nb201

        return nb201, lambda s: nb201.network_graph(s, num_classes=10, input_size=32, batch_size=1)
    if space == "fbnet":
        from ledgformer.spaces import fbnet

        return fbnet, lambda ops: fbnet.network_graph(ops, dataset="cifar100", batch_size=1)
    from ledgformer.spaces import ofa

    return ofa, lambda cfg: ofa.network_graph(cfg, batch_size=1)


def load_help(root: Path, space: str, with_graphs: bool = True, limit: int | None = None,
              show_progress: bool = True) -> BenchmarkData:
    """Every HELP latency file of ``space`` as records (ms), graphs by id (see module doc).

    ``limit`` keeps the first N archs of HELP's order (a quick subset; the order is random).
    """
    from ledgformer.hardware import card_name

    folder = root / "help" / space
    ids, inputs = help_archs(space, folder)
    n_all = len(ids)
    if limit is not None:
        ids = ids[:limit]
        inputs = {gid: inputs[gid] for gid in ids}
    tags = [{"index": i, "family": space} for i in range(len(ids))]
    if space == "nasbench201":
        from ledgformer.spaces.nb201 import output_cut_off

        for tag, gid in zip(tags, ids, strict=True):
            tag["output_cut_off"] = output_cut_off(inputs[gid])
    files = sorted((folder / "latency").glob("*.pt"))
    if not files:
        raise LedgformerError(f"no latency files in {folder / 'latency'}")
    records: list[Record] = []
    batches: dict[str, int] = {}
    integer_ms: list[str] = []
    for path in files:
        values = torch_load(path)
        if not isinstance(values, list) or len(values) != n_all:
            n = len(values) if isinstance(values, list) else type(values).__name__
            raise LedgformerError(f"{path}: expected a list of {n_all} latencies, got {n}")
        values = values[:len(ids)]
        card = card_name("help", path.stem)
        batches[card] = batch_size(path.stem)
        if all(isinstance(v, int) for v in values):
            integer_ms.append(card)
        records += [Record(gid, float(v), "latency_ms", card, t) for gid, v, t in zip(ids, values, tags,
                                                                                        strict=True)]
    meta = {
        "space": space, "source": str(folder), "unit": "ms", "batch_size": batches,
        "integer_ms": integer_ms,
        "hardware_embedding_index": list(torch_load(folder / "hardware_embedding_index.pt")),
        "graphs": "batch 1; the batch size of each card is in meta['batch_size']",
    }
    graphs, failures = {}, {}
    if with_graphs:
        from ledgformer.data.graph_cache import cached_graphs

        module, build = _builder(space)
        graphs, failures = cached_graphs(f"help-{space}", [module], inputs, build, show_progress)
    return BenchmarkData(f"help-{space}", graphs, records, meta=meta, failures=failures)


__all__ = ["batch_size", "help_archs", "load_help", "torch_load"]
