"""Benchmark suites: one command trains ours, its ablations and the baselines over seeds.

A suite file (``configs/bench/<suite>.yaml``) names a base run config and three axes:

* ``settings`` (table columns, e.g. the training-set size N): name -> config overrides;
* ``variants`` (table rows: ours, ablations, baselines): name -> config overrides;
* ``seeds``.

Every (setting, variant, seed) is one :func:`~ledgformer.train.trainer.run_experiment`. The
results file ``results/<suite>[-quick].json`` holds every metric of every run with its resolved
config and wall time, plus the machine and code versions; it is rewritten after each run, and a
rerun skips runs whose resolved config is already in it (a 90-minute suite can be resumed).
``results/<suite>[-quick].md`` has mean ± std tables and ``<suite>[-quick]_<metric>.png`` the plot.
``quick`` in the suite file selects a subset and extra overrides for a minutes-long check.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ledgformer.errors import LedgformerError

SUITE_KEYS = {"suite", "description", "base", "seeds", "settings", "variants", "metrics", "quick", "command"}


def load_suite(path: str | Path) -> dict[str, Any]:
    """The suite file, checked; ``base`` resolved relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise LedgformerError(f"suite file {path} not found")
    try:
        suite = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise LedgformerError(f"{path}: not valid YAML ({err})") from err
    unknown = sorted(set(suite) - SUITE_KEYS)
    if unknown:
        raise LedgformerError(f"{path}: unknown suite key(s) {unknown}; known: {sorted(SUITE_KEYS)}")
    for key in ("base", "variants", "metrics"):
        if not suite.get(key):
            raise LedgformerError(f"{path}: the suite needs '{key}'")
    suite.setdefault("suite", path.stem)
    suite.setdefault("seeds", [0])
    suite.setdefault("settings", {"default": {}})
    suite["base"] = str(path.parent / suite["base"])
    return suite


def _quick(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite restricted by its ``quick`` section (seeds, settings/variants subsets, overrides)."""
    q = dict(suite.get("quick") or {})
    out = dict(suite)
    out["seeds"] = q.get("seeds", suite["seeds"][:1])
    for axis in ("settings", "variants"):
        if axis in q:
            missing = [k for k in q[axis] if k not in suite[axis]]
            if missing:
                raise LedgformerError(f"quick.{axis} names unknown {axis} {missing}")
            out[axis] = {k: suite[axis][k] for k in q[axis]}
    out["extra"] = dict(q.get("overrides") or {})
    return out


def _overrides(*parts: Mapping[str, Any]) -> list[str]:
    """``key=value`` strings (JSON values are valid YAML) from override mappings, later wins."""
    merged: dict[str, Any] = {}
    for p in parts:
        merged.update(p or {})
    return [f"{k}={json.dumps(v)}" for k, v in merged.items()]


def _run_key(cfg: Mapping[str, Any]) -> str:
    clean = {k: v for k, v in cfg.items() if k != "out"}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    import os

    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def run_suite(path: str | Path, *, quick: bool = False, results_dir: str | Path = "results",
              runs_dir: str | Path = "runs/bench", seeds: Sequence[int] | None = None,
              progress: bool = True, command: str = "") -> dict[str, Any]:
    """Run (or resume) a suite; write ``<results_dir>/<name>.json|.md|_<metric>.png``; return the results."""
    from rich.progress import Progress

    from ledgformer import __version__
    from ledgformer.train.checkpoint import code_versions
    from ledgformer.train.config import load_config
    from ledgformer.train.trainer import run_experiment

    full = load_suite(path)
    suite = _quick(full) if quick else {**full, "extra": {}}
    if seeds is not None:
        suite["seeds"] = list(seeds)
    name = suite["suite"] + ("-quick" if quick else "")
    out_json = Path(results_dir) / f"{name}.json"
    old = json.loads(out_json.read_text()) if out_json.is_file() else {}
    done = {r["key"]: r for r in old.get("runs", [])}
    jobs = [(s, v, seed) for s in suite["settings"] for v in suite["variants"] for seed in suite["seeds"]]
    results: dict[str, Any] = {
        "suite": suite["suite"], "quick": quick, "description": suite.get("description", ""),
        "command": command, "base_config": suite["base"], "seeds": suite["seeds"],
        "settings": suite["settings"], "variants": suite["variants"], "metrics": suite["metrics"],
        "machine": machine_info(), "ledgformer": __version__, "versions": code_versions(None),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": [],
    }
    t_start = time.time()
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"bench {name}", total=len(jobs))
        for setting, variant, seed in jobs:
            ov = _overrides(suite["settings"][setting], suite["variants"][variant], suite["extra"])
            out = Path(runs_dir) / name / setting.replace("=", "") / variant.replace(" ", "_") / f"seed{seed}"
            cfg = load_config(suite["base"], [*ov, f"seed={seed}", f"out={out}", "train.progress=false"])
            key = _run_key(cfg)
            bar.update(task, description=f"{setting} | {variant} | seed {seed}")
            if key in done:
                results["runs"].append(done[key])
            else:
                t0 = time.time()
                metrics = run_experiment(cfg)
                results["runs"].append({"key": key, "setting": setting, "variant": variant, "seed": seed,
                                        "wall_seconds": time.time() - t0, "metrics": metrics, "config": cfg})
            results["wall_seconds"] = time.time() - t_start
            write_results(results, Path(results_dir), name)
            bar.advance(task)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_results(results, Path(results_dir), name)
    return results


def summarise(results: Mapping[str, Any], metric: str) -> dict[tuple[str, str], list[float]]:
    """(variant, setting) -> the metric over seeds (runs without the metric are skipped)."""
    table: dict[tuple[str, str], list[float]] = {}
    for r in results["runs"]:
        value = r["metrics"].get(metric)
        if value is not None:
            table.setdefault((r["variant"], r["setting"]), []).append(float(value))
    return table


def lower_is_better(metric: str) -> bool:
    """Error metrics (MAPE, RMSE, RMSPE) are better when lower; correlations and Acc(k%) higher."""
    return metric.rsplit(".", 1)[-1] in ("mape", "rmse", "rmspe")


def markdown(results: Mapping[str, Any]) -> str:
    """Mean ± std (over seeds) tables: one per metric, variants as rows, settings as columns."""
    settings, variants = list(results["settings"]), list(results["variants"])
    lines = [f"# {results['suite']}{' (quick)' if results['quick'] else ''}", "",
             results.get("description", "").strip(), "",
             f"Command: `{results.get('command', '')}`  ",
             f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, torch "
             f"{results['machine']['torch']}; wall time {results.get('wall_seconds', 0) / 60:.1f} min; "
             f"seeds {results['seeds']}.", ""]
    for metric in results["metrics"]:
        table = summarise(results, metric)
        lines += [f"## {metric}", "", "| variant | " + " | ".join(settings) + " |",
                  "|---|" + "---:|" * len(settings)]
        pick = min if lower_is_better(metric) else max
        best = {s: pick((np.mean(table[(v, s)]) for v in variants if (v, s) in table), default=None)
                for s in settings}
        for v in variants:
            cells = []
            for s in settings:
                vals = table.get((v, s))
                if not vals:
                    cells.append("–")
                    continue
                m = float(np.mean(vals))
                cell = f"{m:.3f} ± {np.std(vals):.3f}" if len(vals) > 1 else f"{m:.3f}"
                is_best = best[s] is not None and m == best[s] and len(variants) > 1
                cells.append(f"**{cell}**" if is_best else cell)
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: Mapping[str, Any], metric: str, path: Path) -> Path:
    """The metric (mean ± std over seeds) per setting, one line per variant."""
    from ledgformer.train.report import _new_figure, _save

    settings, table = list(results["settings"]), summarise(results, metric)
    fig = _new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(settings))
    for v in results["variants"]:
        pts = [(i, np.mean(table[(v, s)]), np.std(table[(v, s)])) for i, s in enumerate(settings)
               if (v, s) in table]
        if pts:
            i, m, sd = map(np.asarray, zip(*pts, strict=True))
            ax.errorbar(x[i], m, yerr=sd, marker="o", capsize=3, label=v)
    ax.set_xticks(x, settings)
    ax.set_ylabel(metric)
    ax.set_title(f"{results['suite']}{' (quick)' if results['quick'] else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_results(results: Mapping[str, Any], results_dir: Path, name: str) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (results_dir / f"{name}.md").write_text(markdown(results) + "\n")
    if results["runs"]:
        for metric in results["metrics"]:
            plot(results, metric, results_dir / f"{name}_{metric.replace('.', '_')}.png")


__all__ = ["load_suite", "machine_info", "markdown", "run_suite", "summarise"]
