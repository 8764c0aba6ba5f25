"""Speed of LeDG-Former and the neural baselines on CPU: training and inference throughput,
featurisation (no cache / cold / warm), and ranking all 15,625 NAS-Bench-201 networks per device.

Workloads: NAS-Bench-201 cells (``configs/nb201-acc-781.yaml``: task, model, batch sizes) and
HELP's NAS-Bench-201 whole networks (``configs/help-nb201-zeroshot.yaml``; an example is one
(network, device) pair and LeDG-Former encodes a network once per batch). Every model runs the
trainer's own batching (``Trainer._forward``: collate + forward), loss, clipping and AdamW step,
with the same batch sizes; weights are freshly initialised (speed does not depend on them).
Ranking: the model's encode + decode directly; the user API with the shipped late-fusion
predictor, cold (empty encoding cache, in this process) and warm (fresh processes reading the
encoding disk cache); and ``encode`` before/after its inference fast path on the same graphs.
Throughput = examples / wall seconds, median over repeats. Writes results/speed.json (machine,
threads, versions, command) and results/speed.md; ``--quick`` (small sets, one repeat) writes
results/quick/speed.{json,md}.

    .venv/bin/python benchmarks/speed.py [--quick] [--threads 1] [--models ledgformer gin ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ledgformer.data.registry import load_benchmark
from ledgformer.model.feature_cache import cached_graph_tensors
from ledgformer.model.features import GRAPH_FEATURES, NODE_FEATURES, Batch, TextTable, graph_tensors
from ledgformer.model.registry import create_model
from ledgformer.train.config import load_config
from ledgformer.train.tasks import TaskData, build_task, featurize
from ledgformer.train.trainer import Trainer, model_kwargs, pairwise_rank_loss, set_seed, to_model_space

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ledgformer", "gin", "mlp", "static_transformer", "graphsage")
WORKLOADS = {  # name -> (config, overrides in --quick mode)
    "nb201-cells": ("configs/nb201-acc-781.yaml", []),
    "help-nb201-networks": ("configs/help-nb201-zeroshot.yaml",
                            ["data.n_train_archs=100", "data.eval_all=false"]),
}
#: baseline settings that depend on the graphs: the MLP reads 8 node slots of a cell, counts otherwise
BASELINE_CFG = {"nb201-cells": {"mlp": {"encoding": "position", "max_nodes": 8}},
                "help-nb201-networks": {"mlp": {"encoding": "counts"}}}
RANK_DEVICES = ("help/raspi4", "help/pixel2")
RANK_PREDICTOR = "help-nb201-latency"
API_HOW = f"Predictor.load({RANK_PREDICTOR!r}).rank(arch strings, card)"
AB_GRAPHS, AB_BATCHES = 96, (4, 16)  # encode A/B: NB201 networks spread over the space; batch sizes
FP16_CHECK = 1000  # archs predicted again without the disk cache (exact) to measure float16 rounding


#: inference also runs at this batch size for every model (large batches are slow on CPU for
#: whole networks: the [B, heads, N, N] attention tensors fall out of cache)
SMALL_INFER_BATCH = 32
RANK_BATCH = 4  # graphs per encode batch when ranking (2-4 are fastest on this CPU)


def settings(quick: bool) -> dict[str, Any]:
    """Per workload (cells, networks): training steps per repeat, inference examples, graphs to
    featurise; ``rank_archs`` None = all 15,625."""
    if quick:
        return {"steps": [10, 5], "warmup": 2, "repeats": 1, "infer": [256, 64], "featurise": [2000, 60],
                "rank_archs": 500}
    return {"steps": [100, 50], "warmup": 3, "repeats": 3, "infer": [4096, 512], "featurise": [15625, 1000],
            "rank_archs": None}


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- training and inference -------------------------------------------------------------------
def train_rate(trainer: Trainer, steps: int, warmup: int, repeats: int) -> dict[str, float]:
    """Examples (and distinct graphs) per second of the trainer's step, median over repeats."""
    d, c, model = trainer.data, trainer.cfg, trainer.model
    y_all = to_model_space(d.kind, d.target)
    y_tr = y_all[d.parts["train"]]
    if hasattr(model, "set_target_stats"):
        model.set_target_stats(float(y_tr.mean()), float(y_tr.std()))
    loc, scale = float(y_tr.mean()), float(max(y_tr.std(), 1e-6))
    opt = torch.optim.AdamW(model.parameters(), lr=float(c["lr"]), weight_decay=float(c["weight_decay"]))
    batches = itertools.chain.from_iterable(trainer._epoch_batches(e) for e in itertools.count())
    model.train()

    def step(gb: np.ndarray) -> None:
        y = torch.as_tensor((y_all[gb] - loc) / scale, dtype=torch.float32)
        out = (trainer._forward(gb, model) - loc) / scale
        loss = F.huber_loss(out, y, delta=1.0) if c["loss"] == "huber" else F.mse_loss(out, y)
        if float(c["rank_weight"]) > 0:
            grp = torch.as_tensor(d.device_row[gb])
            loss = loss + float(c["rank_weight"]) * pairwise_rank_loss(out, y, grp, float(c["rank_margin"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c["grad_clip"]:
            nn.utils.clip_grad_norm_(model.parameters(), float(c["grad_clip"]))
        opt.step()

    for _ in range(warmup):
        step(next(batches))
    rates, graph_rates = [], []
    for _ in range(repeats):
        chosen = [next(batches) for _ in range(steps)]
        seconds = timed(lambda chosen=chosen: [step(gb) for gb in chosen])
        rates.append(sum(gb.size for gb in chosen) / seconds)
        graph_rates.append(sum(np.unique(d.graph_row[gb]).size for gb in chosen) / seconds)
    return {"train_examples_per_s": statistics.median(rates),
            "train_distinct_graphs_per_s": statistics.median(graph_rates), "train_runs": rates}


def infer_rate(trainer: Trainer, n: int, repeats: int, batch: int) -> float:
    """Examples per second of ``Trainer.predict`` (collate + forward) at ``batch``, median."""
    idx = trainer.data.parts["test"][:n]
    trainer.cfg["eval_batch_size"] = batch
    trainer.predict(idx[:batch])  # warm-up
    return statistics.median(idx.size / timed(lambda: trainer.predict(idx)) for _ in range(repeats))


def model_rows(workload: str, cfg: dict[str, Any], data: TaskData, models: list[str],
               s: dict[str, Any], w: int) -> list[dict[str, Any]]:
    rows = []
    for name in models:
        mcfg = dict(cfg["model"]) if name == "ledgformer" \
            else {"name": name, **BASELINE_CFG[workload].get(name, {})}
        mname, kw = model_kwargs({**cfg, "model": mcfg}, data)
        set_seed(0)
        model = create_model(mname, **kw)
        trainer = Trainer(model, data, {**cfg["train"], "progress": False}, seed=0)
        row: dict[str, Any] = {"workload": workload, "model": name, "config": mcfg,
                               "params": sum(p.numel() for p in model.parameters()),
                               "train_batch": int(cfg["train"]["batch_size"]),
                               "infer_batch": int(cfg["train"]["eval_batch_size"])}
        row.update(train_rate(trainer, s["steps"][w], s["warmup"], s["repeats"]))
        n_inf, reps = s["infer"][w], s["repeats"]
        row["infer_examples"] = int(min(n_inf, data.parts["test"].size))
        row["infer_examples_per_s"] = infer_rate(trainer, n_inf, reps, row["infer_batch"])
        row["infer_small_examples_per_s"] = infer_rate(trainer, n_inf, reps, SMALL_INFER_BATCH)
        print(f"{workload:20s} {name:18s} train {row['train_examples_per_s']:8.1f} ex/s   infer "
              f"{row['infer_examples_per_s']:9.1f} / {row['infer_small_examples_per_s']:9.1f} ex/s "
              f"(batch {row['infer_batch']} / {SMALL_INFER_BATCH})", flush=True)
        rows.append(row)
    return rows


# ---- featurisation ----------------------------------------------------------------------------
def feature_rows(workload: str, cfg: dict[str, Any], data: TaskData, n: int, repeats: int) -> dict[str, Any]:
    """Graphs/s with no cache, a cold cache (compute + write) and a warm one, on ``n`` graphs; and
    the wall time of a warm ``featurize`` of every graph of the task (what a training run pays)."""
    bench = load_benchmark(cfg["data"]["benchmark"], cfg["data"]["data_root"])
    graphs = [bench.graphs[g] for g in data.graph_ids]
    sub = graphs[:n]
    out: dict[str, Any] = {"workload": workload, "graphs": len(sub),
                           "nodes_mean": float(np.mean([len(g) for g in sub]))}
    table = TextTable()
    out["none_graphs_per_s"] = len(sub) / timed(lambda: [graph_tensors(g, table) for g in sub])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out["cold_graphs_per_s"] = len(sub) / timed(
            lambda: cached_graph_tensors(sub, TextTable(), folder=folder, progress=False))
        warm = [timed(lambda: cached_graph_tensors(sub, TextTable(), folder=folder, progress=False))
                for _ in range(repeats)]
    out["warm_graphs_per_s"] = len(sub) / statistics.median(warm)
    enc = cfg["features"]["encoder"]
    featurize(graphs, enc, progress=False)  # the task build filled the cache; this makes sure
    full = [timed(lambda: featurize(graphs, enc, progress=False)) for _ in range(repeats)]
    out.update({"task_graphs": len(graphs), "task_warm_featurize_s": statistics.median(full)})
    print(f"{workload:20s} featurise {out['none_graphs_per_s']:8.1f} / {out['cold_graphs_per_s']:8.1f} / "
          f"{out['warm_graphs_per_s']:9.1f} graphs/s (none / cold / warm); warm featurize of "
          f"{len(graphs)} graphs {out['task_warm_featurize_s']:.2f} s", flush=True)
    return out


# ---- ranking a whole space --------------------------------------------------------------------
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


def rank_rows(limit: int | None, threads: int, repeats: int) -> dict[str, Any]:
    from ledgformer.spaces import nb201

    cfg = load_config(ROOT / WORKLOADS["help-nb201-networks"][0],
                      ["data.n_train_archs=10", "data.eval_all=false"])
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


# ---- report -----------------------------------------------------------------------------------
def machine(threads: int) -> dict[str, Any]:
    from ledgformer.train.bench import machine_info

    return {**machine_info(), "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "requested_threads": threads, "load_average_at_start": list(os.getloadavg())}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ledgformer", "torch", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def markdown(rep: dict[str, Any]) -> str:
    m = rep["machine"]
    lines = [f"# Speed{' (quick check)' if rep['quick'] else ''}", "",
             f"Machine: {m['cpu']} ({m['cores']} cores), torch {rep['versions']['torch']}, "
             f"{m['torch_threads']} torch thread(s); load average at start "
             f"{m['load_average_at_start'][0]:.1f}. "
             f"Command: `{rep['command']}` ({rep['date']}).", "",
             f"Training: median over {rep['settings']['repeats']} repeats of "
             f"{' / '.join(map(str, rep['settings']['steps']))} steps (cells / networks) with the trainer's "
             "batching, loss, clipping and AdamW step. Inference: `Trainer.predict` (collate + forward) on "
             f"{' / '.join(map(str, rep['settings']['infer']))} test examples, at the config's eval batch "
             f"size and at {SMALL_INFER_BATCH}. On HELP networks an example is one (network, device) pair; "
             "LeDG-Former encodes a network once per batch, the baselines once per example.", "",
             "| workload | model | params | train batch | train ex/s | infer batch "
             f"| infer ex/s | infer ex/s @{SMALL_INFER_BATCH} |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['workload']} | {r['model']} | {r['params']:,} | {r['train_batch']} | "
              f"{r['train_examples_per_s']:.1f} | {r['infer_batch']} | "
              f"{r['infer_examples_per_s']:.1f} | {r['infer_small_examples_per_s']:.1f} |"
              for r in rep["models"]]
    lines += ["", "Featurisation (graphs/s; cold = compute + write the feature cache):", "",
              "| workload | graphs | nodes/graph | no cache | cold | warm "
              "| warm `featurize`, all task graphs |",
              "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {f['workload']} | {f['graphs']} | {f['nodes_mean']:.0f} | {f['none_graphs_per_s']:.1f} | "
              f"{f['cold_graphs_per_s']:.1f} | {f['warm_graphs_per_s']:.1f} | "
              f"{f['task_warm_featurize_s']:.2f} s ({f['task_graphs']} graphs) |"
              for f in rep["featurisation"]]
    r = rep["rank"]
    d = r["direct"]
    lines += ["", f"Rank {d['n_archs']:,} NAS-Bench-201 networks for one device, latency LeDG-Former "
              "with late fusion (hw_layers=0; the direct row with untrained weights), text/card embeddings "
              f"and graph/feature caches warm; encode batch {RANK_BATCH}:", "",
              "| how | first device s | second device s |", "|---|---:|---:|",
              f"| {d['how']} | {d['first_device_s']:.2f} (load graphs {d['load_graphs_s']:.2f}, featurise "
              f"{d['featurize_s']:.2f}, encode {d['encode_s']:.2f}, decode {d['decode_device1_s']:.2f}) | "
              f"{d['second_device_s']:.2f} |"]
    a, ab = r["api"], r["encode_ab"]
    lines += [f"| {a['how']}, cold: empty encoding cache | {a['cold_first_device_s']:.2f} | "
              f"{a['cold_later_device_s']:.2f} |",
              f"| {a['how']}, fresh process, warm encoding cache (median of {len(a['fresh_runs'])}) | "
              f"{a['warm_first_device_s']:.2f} (+ import {a['warm_import_s']:.2f}, load "
              f"{a['warm_load_s']:.2f}) | {a['warm_later_device_s']:.2f} |", "",
              f"The API rows use the shipped `{a['predictor']}` (same architecture). Cold = what a first "
              "call pays: build, hash and featurise the graphs (feature cache warm), encode them and write "
              f"the encoding cache ({a['disk_bytes'] / 1e6:.0f} MB, float16). Warm = a new Python process "
              "(import time shown apart) that reads the encodings from disk: no graph is built, featurised "
              f"or encoded. Warm predictions equal cold ones: {a['warm_same_as_cold']}. Float16 parts vs "
              f"the exact in-memory path (cache off) on {a['float16']['archs']} archs: max relative "
              f"difference {a['float16']['max_rel_diff']:.1e} (median {a['float16']['median_rel_diff']:.1e}),"
              f" Spearman {a['float16']['spearman_vs_exact']:.6f}.", "",
              f"`encode` before/after the inference fast path (one gather of every block's relation bias, "
              f"padding folded in; same numbers: max |diff| {ab['max_abs_diff']:.1e}), "
              f"{ab['graphs']} NB201 networks, ms per graph (median):", "",
              "| batch | before | after | speed-up |", "|---:|---:|---:|---:|"]
    lines += [f"| {bs} | {v['old']:.2f} | {v['new']:.2f} | {v['old'] / v['new']:.2f}x |"
              for bs, v in ab["ms_per_graph"].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets, one repeat (a check, not a result)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["models", "featurisation", "rank"])
    parser.add_argument("--out", type=Path, default=None, help="output stem (default results/speed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    s = settings(args.quick)
    out = args.out or ROOT / "results" / ("quick/speed" if args.quick else "speed")
    rep: dict[str, Any] = {
        "what": "training/inference throughput, featurisation, ranking all NB201 networks (CPU)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(args.threads), "versions": versions(),
        "settings": s, "models": [], "featurisation": [], "rank": None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section: a crash keeps what was measured
        out.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")

    for w, (workload, (path, quick_over)) in enumerate(WORKLOADS.items()):
        cfg = load_config(ROOT / path, quick_over if args.quick else [])
        data = build_task(cfg)
        if "models" not in args.skip:
            rep["models"] += model_rows(workload, cfg, data, args.models, s, w)
            save()
        if "featurisation" not in args.skip:
            rep["featurisation"].append(feature_rows(workload, cfg, data, s["featurise"][w], s["repeats"]))
            save()
    if "rank" not in args.skip:
        rep["rank"] = rank_rows(s["rank_archs"], args.threads, s["repeats"])
        save()
    if rep["models"] and rep["featurisation"] and rep["rank"]:
        out.with_suffix(".md").write_text(markdown(rep))
    print(f"wrote {out.with_suffix('.json')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
