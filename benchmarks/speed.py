"""Speed of LeDG-Former and the neural baselines on CPU: training and inference throughput,
featurisation (no cache / cold / warm), and ranking all 15,625 NAS-Bench-201 networks per device.

Workloads: NAS-Bench-201 cells (``configs/nb201-acc-781.yaml``: task, model, batch sizes) and
HELP's NAS-Bench-201 whole networks (``configs/help-nb201-zeroshot.yaml``; an example is one
(network, device) pair and LeDG-Former encodes a network once per batch). Every model runs the
trainer's own batching (``Trainer._forward``: collate + forward), loss, clipping and AdamW step,
with the same batch sizes; weights are freshly initialised (speed does not depend on them).
Ranking (``benchmarks/speed_rank.py``): the model's encode + decode directly; the user API with
the shipped late-fusion predictor, cold (empty encoding cache, in this process) and warm (fresh
processes reading the encoding disk cache); and ``encode`` before/after its inference fast path.
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
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
import torch.nn.functional as F
from speed_rank import RANK_BATCH, rank_rows, timed  # benchmarks/, beside this script
from torch import nn

from ledgformer.data.registry import load_benchmark
from ledgformer.model.feature_cache import cached_graph_tensors
from ledgformer.model.features import TextTable, graph_tensors
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


#: inference also runs at this batch size for every model (large batches are slow on CPU for
#: whole networks: the [B, heads, N, N] attention tensors fall out of cache)
SMALL_INFER_BATCH = 32


def settings(quick: bool) -> dict[str, Any]:
    """Per workload (cells, networks): training steps per repeat, inference examples, graphs to
    featurise; ``rank_archs`` None = all 15,625."""
    if quick:
        return {"steps": [10, 5], "warmup": 2, "repeats": 1, "infer": [256, 64], "featurise": [2000, 60],
                "rank_archs": 500}
    return {"steps": [100, 50], "warmup": 3, "repeats": 3, "infer": [4096, 512], "featurise": [15625, 1000],
            "rank_archs": None}


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
        rep["rank"] = rank_rows(ROOT / WORKLOADS["help-nb201-networks"][0], s["rank_archs"], args.threads,
                                s["repeats"])
        save()
    if rep["models"] and rep["featurisation"] and rep["rank"]:
        out.with_suffix(".md").write_text(markdown(rep))
    print(f"wrote {out.with_suffix('.json')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
