"""Zero-cost proxies of NAS-Bench-201 architectures: training-free scores that predictors may read.

``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al., ICLR 2021): build the
arch's whole network (``families.nb201_torch``), replace every weight by its absolute value, feed
an all-ones input in float64 and sum the output R; the score is the sum over conv / linear weights
of ``theta * dR/dtheta``. It needs no data and no training, so any arch string gets it in ~50 ms,
and it is among the best single zero-cost proxies on NB201 in Abdelfattah et al. (Spearman ~.74 with
CIFAR-10 accuracy; ours .74 on NASLib's 491 archs, ``scripts/proxy_check.py``). Features are ``log1p(score)``
(on the 15,625 CIFAR-10 networks log1p(score) spans 15-115, median 54; the 341 archs whose
output is cut off score 0).

The score depends on the initial weights' magnitudes, so every network is initialised from torch
seed 0. Values are cached on disk per (proxy, version, classes, resolution), keyed by arch string.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ledgformer.errors import LedgformerError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

#: bump when a proxy's definition changes: cached values of another version are never read
PROXY_VERSION = 1
PROXIES: tuple[str, ...] = ("synflow",)
#: NB201 accuracy benchmarks -> (classes, input resolution) of the network their proxies score
NB201_PROXY_NETWORK: dict[str, tuple[int, int]] = {
    "nb201-cifar10": (10, 32), "nb201-cifar100": (100, 32), "nb201-imagenet16": (120, 16)}
#: model inputs are log1p(score) / PROXY_SCALE (log1p synflow is 0-115 on NB201)
PROXY_SCALE = 100.0


def synflow_score(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Synflow of ``net`` as it is (weights made absolute in place): the sum over conv / linear
    weights of ``theta * dR/dtheta``, R the summed float64 output on an all-ones input."""
    import torch

    net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones(*input_shape, dtype=torch.float64)).sum().backward()
    score = 0.0
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.grad is not None:
            score += float((m.weight.detach() * m.weight.grad).sum())
    return score


def synflow(arch: str, num_classes: int = 10, resolution: int = 32) -> float:
    """The synflow score of NAS-Bench-201 arch ``arch`` (official string), see the module docstring."""
    import torch

    from ledgformer.families.nb201_torch import NB201Network

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = NB201Network(arch, num_classes)
    return synflow_score(net, (1, 3, resolution, resolution))


def proxy_features(archs: Sequence[str], names: Sequence[str], benchmark: str,
                   progress: bool = True) -> np.ndarray:
    """The model inputs ([len(archs), len(names)] float32) of NB201 archs on ``benchmark``'s network."""
    import numpy as np

    if benchmark not in NB201_PROXY_NETWORK:
        raise LedgformerError(f"zero-cost proxies are defined for {sorted(NB201_PROXY_NETWORK)}, "
                              f"not for data.benchmark={benchmark!r}")
    classes, res = NB201_PROXY_NETWORK[benchmark]
    vals = nb201_proxies(archs, names, classes, res, progress=progress)
    return np.asarray(vals, np.float32).reshape(len(archs), len(names)) / PROXY_SCALE


def _one(args: tuple[str, int, int]) -> float:
    import torch

    torch.set_num_threads(1)
    return math.log1p(max(synflow(*args), 0.0))


def _cache_file(name: str, num_classes: int, resolution: int) -> Path:
    from ledgformer.cache import cache_dir

    return cache_dir("proxies", f"v{PROXY_VERSION}") / f"nb201-{name}-c{num_classes}-r{resolution}.json"


def nb201_proxies(archs: Sequence[str], names: Sequence[str] = PROXIES, num_classes: int = 10,
                  resolution: int = 32, workers: int | None = None,
                  progress: bool = True) -> list[list[float]]:
    """Per arch, the features ``log1p(score)`` of the proxies ``names``; disk-cached, computed in
    ``workers`` processes (default: the CPU count) where missing."""
    from ledgformer.spaces.nb201 import arch_str_to_ops

    unknown = sorted(set(names) - set(PROXIES))
    if unknown:
        raise LedgformerError(f"unknown zero-cost proxy {unknown}; known: {list(PROXIES)}")
    for a in set(archs):
        arch_str_to_ops(a)  # a clear error for a bad string before any work
    cols: list[list[float]] = []
    for name in names:
        path = _cache_file(name, num_classes, resolution)
        try:
            known: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            known = {}  # a damaged cache file is recomputed, never trusted
        todo = sorted(set(archs) - set(known))
        if todo:
            _compute(todo, known, path, num_classes, resolution, workers, progress)
        cols.append([known[a] for a in archs])
    return [list(row) for row in zip(*cols, strict=True)] if cols else [[] for _ in archs]


def _compute(todo: list[str], known: dict[str, float], path: Path, num_classes: int,
             resolution: int, workers: int | None, progress: bool) -> None:
    """Fill ``known`` for ``todo``, saving every 500 archs so an interrupted run keeps its work."""
    import multiprocessing as mp

    from rich.progress import Progress

    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if mp.current_process().daemon:  # a pool worker (bench --jobs) may not start processes
        n_workers = 1
    jobs = [(a, num_classes, resolution) for a in todo]
    with Progress(transient=True, disable=not progress or len(todo) < 50) as bar:
        task = bar.add_task(f"synflow of {len(todo)} NB201 networks", total=len(todo))
        pool = mp.get_context("spawn").Pool(n_workers) if n_workers > 1 else None
        try:
            results = pool.imap(_one, jobs, chunksize=16) if pool else map(_one, jobs)
            for i, (a, v) in enumerate(zip(todo, results, strict=True), start=1):
                known[a] = v
                bar.advance(task)
                if i % 500 == 0:
                    _save(path, known)
        finally:
            if pool:
                pool.close()
                pool.join()
    _save(path, known)


def _save(path: Path, known: dict[str, float]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(known, sort_keys=True))
    tmp.replace(path)


__all__ = ["NB201_PROXY_NETWORK", "PROXIES", "PROXY_SCALE", "PROXY_VERSION", "nb201_proxies",
           "proxy_features", "synflow", "synflow_score"]
