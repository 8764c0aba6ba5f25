"""Benchmark suites: one command trains ours, its ablations and the baselines over seeds.

A suite file (``configs/bench/<suite>.yaml``) names a base run config and three axes:

* ``settings`` (table columns, e.g. the training-set size N): name -> config overrides;
* ``variants`` (table rows: ours, ablations, baselines): name -> config overrides;
* ``seeds``;

and optionally ``limit`` (variant -> the only settings it runs in, to keep a suite within its time
budget), ``shots`` (HELP-protocol suites: after training, fine-tune on K measured samples of each
test device, for each K; metrics ``k<K>.*``) and ``tables`` (extra tables whose columns are
metrics, e.g. one per test device).

Every (setting, variant, seed) is one :func:`~ledgformer.train.experiment.run_experiment`, run
in this process or, with ``jobs > 1``, in worker processes (one torch thread each). The results
file ``results/<suite>[-quick].json`` holds every metric of every run with its resolved config and
wall time, the git commit and :data:`RESULTS_VERSION`, plus the machine and code versions; it is
rewritten after each run, and a rerun skips runs whose resolved config and results version are
already in it (a 90-minute suite can be resumed); ``rerun`` names variants to train again anyway.
Each run also records the fingerprint of every hardware card it read: a finished run whose cards
changed since (a card's text or features, e.g. a corrected spec figure) trains again, and only
those runs: a new phone card does not touch a HELP suite.
Tables and plots: :mod:`ledgformer.train.bench_report`. ``quick`` in the suite file selects a subset and extra
overrides for a minutes-long check.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledgformer.errors import LedgformerError
from ledgformer.train.bench_report import write_results

#: The version of the training / evaluation code behind a run's numbers. Resume reuses a finished
#: run only when it carries this version, so bump it when a fix changes what an existing config
#: produces (runs recorded before the field existed count as version 1). A fix that touches one
#: model only can instead be picked up with ``rerun=[variant]`` (``ledgformer bench --rerun``).
RESULTS_VERSION = 1

SUITE_KEYS = {"suite", "description", "base", "seeds", "settings", "variants", "metrics", "quick",
              "command", "limit", "shots", "tables", "tables_from", "set"}


def load_suite(path: str | Path) -> dict[str, Any]:
    """The suite file, checked; ``base`` resolved relative to the file."""
    from ledgformer.train.config import read_yaml_mapping

    path = Path(path)
    suite = read_yaml_mapping(path, "suite file")
    unknown = sorted(set(suite) - SUITE_KEYS)
    if unknown:
        raise LedgformerError(f"{path}: unknown suite key(s) {unknown}; known: {sorted(SUITE_KEYS)}")
    for key in ("base", "variants", "metrics"):
        if not suite.get(key):
            raise LedgformerError(f"{path}: the suite needs '{key}'")
    suite.setdefault("suite", path.stem)
    suite.setdefault("seeds", [0])
    suite.setdefault("settings", {"default": {}})
    suite["limit"] = dict(suite.get("limit") or {})
    for variant, only in suite["limit"].items():
        if variant not in suite["variants"]:
            raise LedgformerError(f"{path}: limit names unknown variant {variant!r}")
        bad = [s for s in only if s not in suite["settings"]]
        if bad:
            raise LedgformerError(f"{path}: limit.{variant} names unknown setting(s) {bad}")
    if not isinstance(suite.get("set") or {}, dict):
        raise LedgformerError(f"{path}: 'set' is a mapping of config overrides applied to every run "
                              f"(e.g. {{train.max_minutes: null}}), got {suite['set']!r}")
    suite["set"] = dict(suite.get("set") or {})
    suite["shots"] = [int(k) for k in suite.get("shots") or []]
    if any(k < 1 for k in suite["shots"]):
        raise LedgformerError(f"{path}: shots are K >= 1 measured samples (K = 0 is the test.* metrics)")
    if suite.get("tables_from"):  # a study on a suite's grid shows the suite's own tables
        if suite.get("tables"):
            raise LedgformerError(f"{path}: give 'tables' or 'tables_from' (a suite file whose tables "
                                  "to show), not both")
        suite["tables"] = load_suite(path.parent / suite.pop("tables_from")).get("tables") or []
    for spec in suite.get("tables") or []:
        if not isinstance(spec, dict) or not spec.get("title") or not isinstance(spec.get("columns"), dict):
            raise LedgformerError(f"{path}: each entry of 'tables' needs a title and columns (label: metric)")
    suite["base"] = str(path.parent / suite["base"])
    return suite


def _quick(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite restricted by its ``quick`` section (seeds, settings/variants/shots subsets, overrides)."""
    q = dict(suite.get("quick") or {})
    out = dict(suite)
    out["seeds"] = q.get("seeds", suite["seeds"][:1])
    out["shots"] = [int(k) for k in q.get("shots", suite["shots"])]
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


def flatten_config(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``: configs compared key by key."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _model_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``model.<key>`` defaults of the model ``cfg`` trains (a model option added later, pinned at
    its default in a study, still matches the runs made before it)."""
    from ledgformer.model.registry import model_defaults

    name = (cfg.get("model") or {}).get("name", "ledgformer")
    return {f"model.{k}": v for k, v in model_defaults(name).items()}


def _earlier_run(runs: Sequence[Mapping[str, Any]], head: Mapping[str, Any], cfg: Mapping[str, Any],
                 shots: Sequence[int]) -> dict[str, Any] | None:
    """A finished run of the same (setting, variant, seed) whose config equals ``cfg`` except for
    keys added to the defaults since it ran, still at their default value (so adding a config key
    does not make every suite start over)."""
    from ledgformer.train.config import DEFAULTS

    defaults, new = flatten_config(DEFAULTS), flatten_config({k: v for k, v in cfg.items() if k != "out"})
    defaults.update(_model_defaults(cfg))
    for r in runs:
        if (r["setting"], r["variant"], r["seed"]) != (head["setting"], head["variant"], head["seed"]):
            continue
        if r.get("results_version", 1) != RESULTS_VERSION:
            continue
        if any(f"k{k}.mean_device_spearman" not in r["metrics"] for k in shots):
            continue
        was = flatten_config({k: v for k, v in r["config"].items() if k != "out"})
        added = set(new) - set(was)
        if set(was) <= set(new) and all(was[k] == new[k] for k in was) \
                and all(k in defaults and new[k] == defaults[k] for k in added):
            return dict(r)
    return None


def _slug(name: str) -> str:
    """A setting / variant name as a folder name (``N=781`` -> ``N781``, spaces -> ``_``)."""
    return name.replace("=", "").replace(" ", "_")


def _run_key(cfg: Mapping[str, Any], shots: Sequence[int] = ()) -> str:
    clean = {k: v for k, v in cfg.items() if k != "out"}
    if shots:
        clean["bench.shots"] = list(shots)
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stale_cards(run: Mapping[str, Any], current: dict[str, str | None]) -> list[str]:
    """The hardware cards a finished run read that changed since (other text or features, or gone);
    ``current`` caches fingerprints across runs. A run recorded before cards were (``cards``
    absent or null) cannot be checked and counts as current."""
    from ledgformer.hardware import card_fingerprints

    recorded = run.get("cards") or {}
    missing = [n for n in recorded if n not in current]
    current.update(card_fingerprints(missing))
    return sorted(n for n, fp in recorded.items() if current[n] != fp)


def _label(head: dict[str, Any]) -> str:
    """How progress names one run: ``setting | variant | seed S``."""
    return f"{head['setting']} | {head['variant']} | seed {head['seed']}"


def _run_one(cfg: dict[str, Any], shots: Sequence[int]) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Train + evaluate one run (and its few-shot evaluations); metrics, wall seconds and the
    fingerprints of the hardware cards it read."""
    import torch

    from ledgformer.train.checkpoint import read_checkpoint
    from ledgformer.train.experiment import run_experiment

    t0 = time.time()
    metrics = run_experiment(cfg)
    if shots:
        from ledgformer.train.finetune import few_shot_metrics

        torch.set_num_threads(int(cfg["train"]["threads"]))
        metrics.update(few_shot_metrics(Path(cfg["out"]) / "model.pt", list(shots), seed=int(cfg["seed"]),
                                        data_root=cfg["data"].get("data_root")))
    wall = time.time() - t0
    return metrics, wall, read_checkpoint(Path(cfg["out"]) / "model.pt")["extra"].get("cards", {})


def git_commit(where: str | Path | None = None) -> str | None:
    """The commit of the checkout holding ``where`` (default: this package), ``+dirty`` when a
    tracked file outside ``results/`` has uncommitted changes (a suite rerun from scratch starts by
    moving its results file aside, which changes no number); None outside a git checkout."""
    import subprocess

    here = Path(where) if where is not None else Path(__file__).parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)results"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


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


def plan_suite(path: str | Path, *, quick: bool = False, results_dir: str | Path = "results",
               runs_dir: str | Path = "runs/bench", seeds: Sequence[int] | None = None,
               rerun: Sequence[str] = ()) -> dict[str, Any]:
    """What :func:`run_suite` would do, without training: the suite as resolved, its name, the grid
    of (setting, variant, seed), the earlier results file, the finished runs it reuses (grid index
    -> run), the runs it would train (grid index, head, resolved config) and, among those, the
    finished runs whose hardware cards changed since (grid index -> card names)."""
    from ledgformer.train.config import load_config

    full = load_suite(path)
    suite = _quick(full) if quick else {**full, "extra": {}}
    if seeds is not None:
        suite["seeds"] = list(seeds)
    unknown = [v for v in rerun if v not in full["variants"]]
    if unknown:
        raise LedgformerError(f"rerun names unknown variant(s) {unknown}; this suite's variants: "
                              f"{', '.join(full['variants'])}")
    name = suite["suite"] + ("-quick" if quick else "")
    out_json = Path(results_dir) / f"{name}.json"
    old = json.loads(out_json.read_text()) if out_json.is_file() else {}
    done = {r["key"]: r for r in old.get("runs", []) if r.get("results_version", 1) == RESULTS_VERSION}
    limit = suite["limit"]
    # seed-major: a suite stopped part-way has every setting and variant for its first seeds
    grid = [(s, v, seed) for seed in suite["seeds"] for s in suite["settings"] for v in suite["variants"]
            if v not in limit or s in limit[v]]
    reused: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    stale: dict[int, list[str]] = {}
    fingerprints: dict[str, str | None] = {}
    for i, (setting, variant, seed) in enumerate(grid):
        ov = _overrides(suite["set"], suite["settings"][setting], suite["variants"][variant], suite["extra"])
        out = Path(runs_dir) / name / _slug(setting) / _slug(variant) / f"seed{seed}"
        cfg = load_config(suite["base"], [*ov, f"seed={seed}", f"out={out}", "train.progress=false"])
        key = _run_key(cfg, suite["shots"])
        head = {"key": key, "setting": setting, "variant": variant, "seed": seed}
        prev = None if variant in rerun else \
            done.get(key) or _earlier_run(old.get("runs", []), head, cfg, suite["shots"])
        if prev is not None and (changed := _stale_cards(prev, fingerprints)):
            stale[i], prev = changed, None
        if prev is not None:
            reused[i] = {**prev, "key": key}
        else:
            todo.append((i, head, cfg))
    return {"suite": suite, "name": name, "results_file": out_json, "old": old, "grid": grid,
            "reused": reused, "todo": todo, "stale_cards": stale}


def run_suite(path: str | Path, *, quick: bool = False, results_dir: str | Path = "results",
              runs_dir: str | Path = "runs/bench", seeds: Sequence[int] | None = None,
              progress: bool = True, command: str = "", jobs: int = 1,
              rerun: Sequence[str] = ()) -> dict[str, Any]:
    """Run (or resume) a suite; write ``<results_dir>/<name>.json|.md|_<metric>.png``; return the results.

    ``jobs > 1`` runs that many trainings at once in worker processes (each uses ``train.threads``
    torch threads); the numbers do not depend on ``jobs``, only the wall time does. ``rerun``:
    variants whose finished runs are trained again (after a fix to that model).
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledgformer import __version__
    from ledgformer.train.checkpoint import code_versions

    if jobs < 1:
        raise LedgformerError(f"jobs must be >= 1, got {jobs}")
    plan = plan_suite(path, quick=quick, results_dir=results_dir, runs_dir=runs_dir, seeds=seeds,
                      rerun=rerun)
    suite, name, old, grid = plan["suite"], plan["name"], plan["old"], plan["grid"]
    runs: dict[int, dict[str, Any]] = dict(plan["reused"])
    todo = plan["todo"]
    results: dict[str, Any] = {
        "suite": suite["suite"], "quick": quick, "description": suite.get("description", ""),
        "command": command, "base_config": suite["base"], "seeds": suite["seeds"],
        "settings": suite["settings"], "variants": suite["variants"], "metrics": suite["metrics"],
        "limit": suite["limit"], "shots": suite["shots"], "tables": suite.get("tables") or [],
        "machine": machine_info(), "ledgformer": __version__, "versions": code_versions(None),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "n_planned": len(grid), "runs": [],
    }
    commit = git_commit()
    # a resumed suite counts its earlier sessions' time; one whose runs all train again does not,
    # nor one that reuses runs from another suite's file (a study seeded with an older study's)
    resumed = bool(runs) and old.get("suite") == suite["suite"]
    t_start = time.time() - float(old.get("wall_seconds", 0.0)) if resumed else time.time()

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA {task.fields[eta]}")]
    with Progress(*columns, disable=not progress) as bar:
        label = f"bench {name}" + (f" ({jobs} jobs)" if jobs > 1 else "")
        task = bar.add_task(label, total=len(grid), completed=len(grid) - len(todo), eta="?")
        t_run, n_run = time.time(), 0
        # a suite run in the background writes to a log, where rich draws no live bar: one line a run
        log_lines = progress and not bar.console.is_terminal

        def record(i: int, head: dict[str, Any], cfg: dict[str, Any],
                   outcome: tuple[dict[str, Any], float, dict[str, Any]]) -> None:
            """Save a finished run (the results files are rewritten after each) and advance the bar."""
            nonlocal n_run
            metrics, wall, cards = outcome
            runs[i] = {**head, "wall_seconds": wall, "metrics": metrics, "config": cfg, "cards": cards,
                       "results_version": RESULTS_VERSION, "commit": commit}
            results["runs"] = [runs[k] for k in sorted(runs)]
            results["wall_seconds"] = time.time() - t_start
            write_results(results, Path(results_dir), name)
            n_run += 1
            left = (time.time() - t_run) / n_run * (len(todo) - n_run) / jobs
            bar.update(task, advance=1, description=label, eta=f"{left / 60:.0f} min")
            if log_lines:
                done = len(grid) - len(todo) + n_run
                bar.console.print(f"[{done}/{len(grid)}] {_label(head)}: {wall / 60:.1f} min; elapsed "
                                  f"{(time.time() - t_run) / 60:.1f} min, ETA {left / 60:.0f} min",
                                  markup=False, highlight=False, soft_wrap=True)

        if jobs == 1:
            for i, head, cfg in todo:
                bar.update(task, description=_label(head))
                record(i, head, cfg, _run_one(cfg, suite["shots"]))
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                pending = {pool.submit(_run_one, cfg, suite["shots"]): (i, head, cfg)
                           for i, head, cfg in todo}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        record(*pending.pop(fut), fut.result())
    results["runs"] = [runs[k] for k in sorted(runs)]
    results["wall_seconds"] = time.time() - t_start
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_results(results, Path(results_dir), name)
    return results


__all__ = ["RESULTS_VERSION", "git_commit", "load_suite", "machine_info", "plan_suite", "run_suite"]
