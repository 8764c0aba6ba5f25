"""Speed of ranking all 15,625 NAS-Bench-201 networks per device (part of ``benchmarks/speed.py``).

Three views: the model's ``encode`` once + ``decode`` per device directly (``rank_direct``); the
user API with the shipped late-fusion predictor, cold (empty encoding cache, in this process) and
warm (fresh processes reading the encoding disk cache) (``rank_api``); and ``encode`` before / after
its inference fast path on the same graphs (``encode_ab``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ledgformer.data.registry import load_benchmark
from ledgformer.model.features import GRAPH_FEATURES, NODE_FEATURES, Batch
from ledgformer.model.registry import create_model
from ledgformer.train.config import load_config
from ledgformer.train.tasks import TaskData, build_task, featurize
from ledgformer.train.trainer import model_kwargs, set_seed

RANK_DEVICES = ("help/raspi4", "help/pixel2")
RANK_PREDICTOR = "help-nb201-latency"
API_HOW = f"Predictor.load({RANK_PREDICTOR!r}).rank(arch strings, card)"
AB_GRAPHS, AB_BATCHES = 96, (4, 16)  # encode A/B: NB201 networks spread over the space; batch sizes
FP16_CHECK = 1000  # archs predicted again without the disk cache (exact) to measure float16 rounding
RANK_BATCH = 4  # graphs per encode batch when ranking (2-4 are fastest on this CPU)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def mask_only(mask: torch.Tensor) -> Batch:
    """A batch holding just the node mask, all a late-fusion ``decode`` reads (other fields are
    zero-stride views: keeping 15,625 relation matrices would take gigabytes)."""
    b, n = mask.shape
    zl, zf = torch.zeros((), dtype=torch.long), torch.zeros(())
    return Batch(op=zl.expand(b, n), num=zf.expand(b, n, len(NODE_FEATURES)), text_ids=zl.expand(b, n),
                 rel=zl.expand(b, n, n), mask=mask, glob=zf.expand(b, len(GRAPH_FEATURES)),
                 text_table=zf.expand(1, 1))


def rank_direct(cfg: dict[str, Any], data: TaskData, batch: int, limit: int | None) -> dict[str, Any]:
    """Rank all NB201 networks per device with ``encode`` once and ``decode`` per device.

    Graphs come from the benchmark's graph cache, tensors from the feature cache, text and card
    embeddings from the embedding cache (all warm, as on a user's second call)."""
    from ledgformer.model.features import collate, hardware_tensors

    set_seed(0)
    name, kw = model_kwargs(cfg, data)
    model = create_model(name, **kw).eval()
    enc = cfg["features"]["encoder"]
    out: dict[str, Any] = {"how": "model.encode once + model.decode per device (late fusion, hw_layers=0)"}
    t0 = time.perf_counter()
    bench = load_benchmark(cfg["data"]["benchmark"], cfg["data"]["data_root"])
    graphs = list(bench.graphs.values())[:limit]
    out["load_graphs_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    items, table, _ = featurize(graphs, enc, progress=False)
    out["featurize_s"] = time.perf_counter() - t1
    order = np.argsort([len(g) for g in items], kind="stable")  # similar sizes share a batch
    states = []
    t2 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, order.size, batch):
            b = collate([items[i] for i in order[s:s + batch]], table)
            states.append((model.encode(b), b.mask))
    out["encode_s"] = time.perf_counter() - t2
    out["first_device_s"] = time.perf_counter() - t0
    for k, dev in enumerate(RANK_DEVICES):
        t3 = time.perf_counter()
        hw1 = hardware_tensors([dev], enc)
        with torch.no_grad():
            pred = torch.cat([model.decode(x, mask_only(m), hw1.index(torch.zeros(len(m), dtype=torch.long)))
                              for x, m in states])
        ranking = order[np.argsort(pred.numpy(), kind="stable")]
        out[f"decode_device{k + 1}_s"] = time.perf_counter() - t3
        assert ranking.size == len(graphs)
    out["first_device_s"] += out["decode_device1_s"]
    out["second_device_s"] = out["decode_device2_s"]
    out["n_archs"] = len(graphs)
    return out


def encode_reference(model: nn.Module, batch: Batch) -> torch.Tensor:
    """``model.encode`` as it was before the inference fast path (each block gathers its own
    relation table and adds the padding): the "before" of the encode A/B."""
    x = torch.cat([(model.glob_tok + model.glob_mlp(batch.glob))[:, None], model.node_tokens(batch)], 1)
    rel, key_pad = model._sequence_rel(batch, 1)
    n_pre = model.config.n_layers - (model.config.hw_layers if model.has_hw else 0)
    for blk in model.blocks[:n_pre]:
        x = blk(x, rel, key_pad)
    return x


def encode_ab(model: nn.Module, graphs: list[Any], batches: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """ms per graph of the old and the new ``encode`` (interleaved repeats, median), and their
    largest difference on these graphs (0 = bitwise equal)."""
    from ledgformer.model.features import collate

    items, table, _ = featurize(graphs, "minilm", progress=False)
    out: dict[str, Any] = {"graphs": len(graphs), "max_abs_diff": 0.0, "ms_per_graph": {}}
    with torch.inference_mode():
        for bs in batches:
            bl = [collate(items[s:s + bs], table) for s in range(0, len(items), bs)]
            diff = max(float((encode_reference(model, b) - model.encode(b)).abs().max()) for b in bl[:2])
            out["max_abs_diff"] = max(out["max_abs_diff"], diff)
            runs: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(repeats):
                runs["old"].append(timed(lambda bl=bl: [encode_reference(model, b) for b in bl]))
                runs["new"].append(timed(lambda bl=bl: [model.encode(b) for b in bl]))
            out["ms_per_graph"][bs] = {k: 1000 * statistics.median(v) / len(graphs) for k, v in runs.items()}
    return out


#: a fresh process: import, load the shipped predictor, rank for two devices; prints JSON
FRESH = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np, torch
torch.set_num_threads({threads})
from ledgformer.api import Predictor
from ledgformer.spaces import nb201
t1 = time.perf_counter()
archs = nb201.all_arch_strings()[:{limit}]
p = Predictor.load("{predictor}")
t2 = time.perf_counter()
first = p.rank(archs, "{dev1}")
t3 = time.perf_counter()
p.rank(archs, "{dev2}")
t4 = time.perf_counter()
np.save(sys.argv[1], p.query(archs, "{dev1}"))
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "first_device_s": t3 - t2,
                  "later_device_s": t4 - t3}}))
"""


def cache_root_without_encodings(real: Path, tmp: Path) -> Path:
    """A cache root whose entries link to the real cache (warm graphs, features, embeddings,
    encoder files) except ``encodings``, which starts empty: a user who never ranked before."""
    root = tmp / "cache"
    root.mkdir()
    for entry in real.iterdir():
        if entry.name != "encodings":
            (root / entry.name).symlink_to(entry)
    return root


def rank_api(archs: list[str], threads: int, repeats: int, check: int) -> dict[str, Any]:
    """``Predictor.rank`` with the shipped predictor: cold (empty encoding cache, in this process),
    a later device (in memory), then fresh processes with the warm disk cache; and how far the
    float16 disk parts move predictions (first ``check`` archs, against the exact in-memory path)."""
    from ledgformer.api import Predictor
    from ledgformer.cache import cache_dir

    out: dict[str, Any] = {"how": API_HOW, "predictor": RANK_PREDICTOR, "n_archs": len(archs)}
    dev1, dev2 = RANK_DEVICES
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = cache_root_without_encodings(cache_dir(), tmp)
        old = os.environ.get("LEDGFORMER_CACHE")
        os.environ["LEDGFORMER_CACHE"] = str(root)
        try:
            p = Predictor.load(RANK_PREDICTOR)
            out["cold_first_device_s"] = timed(lambda: p.rank(archs, dev1))
            out["cold_later_device_s"] = timed(lambda: p.rank(archs, dev2))
            cold = p.query(archs, dev1)
            os.environ["LEDGFORMER_ENCODING_CACHE"] = "0"  # read when the predictor is made
            exact = Predictor.load(RANK_PREDICTOR)
            del os.environ["LEDGFORMER_ENCODING_CACHE"]
            ref = exact.query(archs[:check], dev1)
            rel = np.abs(cold[:check] - ref) / ref
            from scipy.stats import spearmanr

            out["float16"] = {"archs": check, "max_rel_diff": float(rel.max()),
                              "median_rel_diff": float(np.median(rel)),
                              "spearman_vs_exact": float(spearmanr(cold[:check], ref)[0])}
            code = FRESH.format(threads=threads, limit=len(archs), predictor=RANK_PREDICTOR, dev1=dev1,
                                dev2=dev2)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            runs = []
            for k in range(repeats):
                pred = tmp / f"fresh{k}.npy"
                res = subprocess.run([sys.executable, "-c", code, str(pred)], env=env, capture_output=True,
                                     text=True, check=True)
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                runs[-1]["same_as_cold"] = bool(np.array_equal(np.load(pred), cold))
            out["disk_bytes"] = sum(f.stat().st_size for f in (root / "encodings").rglob("*") if f.is_file())
        finally:
            if old is None:
                os.environ.pop("LEDGFORMER_CACHE", None)
            else:
                os.environ["LEDGFORMER_CACHE"] = old
    out["fresh_runs"] = runs
    for key in ("import_s", "load_s", "first_device_s", "later_device_s"):
        out[f"warm_{key}"] = statistics.median(r[key] for r in runs)
    out["warm_same_as_cold"] = all(r["same_as_cold"] for r in runs)
    return out


def rank_rows(config: Path, limit: int | None, threads: int, repeats: int) -> dict[str, Any]:
    """Every ranking measurement, on the model of ``config`` (the HELP NB201 networks config)."""
    from ledgformer.spaces import nb201

    cfg = load_config(config, ["data.n_train_archs=10", "data.eval_all=false"])
    data = build_task(cfg)
    out: dict[str, Any] = {"devices": list(RANK_DEVICES), "model": cfg["model"]}
    out["direct"] = rank_direct(cfg, data, RANK_BATCH, limit)
    set_seed(0)
    name, kw = model_kwargs(cfg, data)
    bench = load_benchmark(cfg["data"]["benchmark"], cfg["data"]["data_root"])
    sample = list(bench.graphs.values())[::max(1, 15625 // AB_GRAPHS)][:AB_GRAPHS]
    out["encode_ab"] = encode_ab(create_model(name, **kw).eval(), sample, AB_BATCHES, max(repeats, 3))
    archs = nb201.all_arch_strings()[:limit]
    out["api"] = rank_api(archs, threads, max(repeats, 3), min(len(archs), FP16_CHECK))
    d, a = out["direct"], out["api"]
    print(f"rank {d['n_archs']} archs (direct): first device {d['first_device_s']:.2f} s, "
          f"second {d['second_device_s']:.2f} s; API cold {a['cold_first_device_s']:.2f} s, later "
          f"{a['cold_later_device_s']:.2f} s, fresh process with warm disk cache "
          f"{a['warm_first_device_s']:.2f} s (+ import {a['warm_import_s']:.2f} s); encode A/B "
          f"{out['encode_ab']['ms_per_graph']}", flush=True)
    return out
