"""Build the embedded latency data set: family variants measured on this machine on several platforms.

For every family (``ledgformer.families``) it generates ``--count`` seeded variants, exports each
to ONNX once, parses it into the ArchGraph IR, and times it on every platform (ONNX Runtime,
ONNX Runtime without graph optimisation, PyTorch eager; ``--threads`` CPU threads, fp32) with
``ledgformer.measure.measure``: warm-up, ``--repeat`` timed runs, the median, and a spread check
(IQR / median <= ``--max-spread``, retried with more runs, else the measurement is listed in
failures.json and not kept). Variants are visited round-robin over the families, so a run cut by
``--time-limit`` still covers every family evenly.

Writes into ``--out`` (default src/ledgformer/embedded): graphs.json.gz, measurements.json,
failures.json, manifest.json, cards/<platform>.yaml and README.md. Run it niced on an idle machine:

    nice -n 10 .venv/bin/python benchmarks/build_embedded.py --count 60
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from ledgformer.errors import LedgformerError
from ledgformer.families import FamilyModel, generate, list_families
from ledgformer.measure import Measurement, MeasurementUnstable, measure

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "ledgformer" / "embedded"
DEFAULT_PLATFORMS = ("onnxruntime", "onnxruntime-noopt", "torch")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="all", help="comma-separated family names, or 'all'")
    p.add_argument("--count", type=int, default=60, help="variants per family (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--platforms", default=",".join(DEFAULT_PLATFORMS), help="comma-separated runtimes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--max-spread", type=float, default=0.1, help="largest accepted IQR / median")
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--max-macs", type=float, default=1e9)
    p.add_argument(
        "--time-limit", type=float, default=None, help="stop starting new variants after this many s"
    )
    p.add_argument("--out", default=str(DEFAULT_OUT))
    return p.parse_args(argv)


def _variants(families: list[str], count: int, seed: int, max_macs: int) -> list[FamilyModel]:
    """All variants, round-robin over the families (variant 0 of each, then variant 1 ...)."""
    per_family = [generate(f, count, seed, max_macs=max_macs) for f in families]
    return [models[i] for i in range(count) for models in per_family]


def _row(m: Measurement, gid: str) -> dict[str, Any]:
    return {
        "graph_id": gid,
        "platform": m.platform,
        "runtime": m.runtime,
        "runtime_version": m.runtime_version,
        "threads": m.threads,
        "precision": m.precision,
        "batch_size": m.batch_size,
        "median_ms": round(m.median_ms, 5),
        "iqr_ms": round(m.iqr_ms, 5),
        "q1_ms": round(m.q1_ms, 5),
        "q3_ms": round(m.q3_ms, 5),
        "n_runs": m.n_runs,
        "attempts": m.attempts,
        "load_avg": None if m.load_avg is None else round(m.load_avg, 2),
        "timestamp": m.timestamp,
        "times_ms": [round(t, 4) for t in m.times_ms],
    }


def measure_all(args: argparse.Namespace, families: list[str], platforms: list[str]) -> dict[str, Any]:
    """Generate, export, parse and time every variant; returns graphs, rows, failures, cards, timing."""
    start = time.monotonic()
    graphs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    cards: dict[str, dict[str, Any]] = {}
    models = _variants(families, args.count, args.seed, int(args.max_macs))
    stopped_at = None
    for k, model in enumerate(models):
        if args.time_limit is not None and time.monotonic() - start > args.time_limit:
            stopped_at = k
            break
        try:
            proto = model.to_onnx()
            graph = model.graph(proto)
        except LedgformerError as err:
            failures.append({"graph_id": model.name, "platform": "*", "reason": str(err)})
            continue
        graphs.append(
            {"graph_id": model.name, "family": model.family, "config": model.config, "graph": graph.to_dict()}
        )
        module = model.build()
        for runtime in platforms:
            src = module if runtime == "torch" else proto
            try:
                m = measure(
                    src,
                    runtime=runtime,
                    threads=args.threads,
                    input_shape=model.input_shape,
                    warmup=args.warmup,
                    repeat=args.repeat,
                    max_rel_iqr=args.max_spread,
                    retries=args.retries,
                    platform_prefix="embedded",
                    name=model.name,
                )
            except MeasurementUnstable as err:
                failures.append({"graph_id": model.name, "platform": runtime, "reason": str(err)})
                continue
            rows.append(_row(m, model.name))
            cards.setdefault(m.platform, {k: v for k, v in m.card.to_dict().items() if v is not None})
        done = k + 1
        if done % 20 == 0 or done == len(models):
            print(
                f"[{time.monotonic() - start:6.0f}s] {done}/{len(models)} variants, "
                f"{len(rows)} measurements, {len(failures)} failures",
                file=sys.stderr,
                flush=True,
            )
    return {
        "graphs": graphs,
        "rows": rows,
        "failures": failures,
        "cards": cards,
        "planned": len(models),
        "stopped_at": stopped_at,
        "seconds": time.monotonic() - start,
    }


def _json_lines(items: list[Any]) -> str:
    """A JSON list with one item per line (valid JSON, diff- and grep-friendly)."""
    return "[\n" + ",\n".join(json.dumps(i, separators=(",", ":")) for i in items) + "\n]\n"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("onnxruntime", "torch", "onnx", "numpy", "ledgformer"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


def write_outputs(out: Path, result: dict[str, Any], manifest: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "graphs.json.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(_json_lines(result["graphs"]).encode())
    (out / "measurements.json").write_text(_json_lines(result["rows"]))
    (out / "failures.json").write_text(_json_lines(result["failures"]))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    cards = out / "cards"
    if cards.is_dir():
        shutil.rmtree(cards)  # generated by this script only: stale platforms must not linger
    for name, card in result["cards"].items():
        path = cards / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
    (out / "README.md").write_text(readme(result, manifest))


def _load_summary(rows: list[dict[str, Any]]) -> str:
    loads = [r["load_avg"] for r in rows if r["load_avg"] is not None]
    if not loads:
        return "not recorded"
    return (
        f"1-minute load average at the start of each measurement: min {min(loads):.2f}, "
        f"median {statistics.median(loads):.2f}, max {max(loads):.2f} "
        f"(on {manifest_cpus()} logical CPUs)"
    )


def manifest_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def readme(result: dict[str, Any], man: dict[str, Any]) -> str:
    rows = result["rows"]
    by_platform: dict[str, list[float]] = {}
    for r in rows:
        by_platform.setdefault(r["platform"], []).append(r["median_ms"])
    spreads = [r["iqr_ms"] / r["median_ms"] for r in rows if r["median_ms"] > 0]
    lines = [
        "# Embedded latency data set",
        "",
        "Generated by `benchmarks/build_embedded.py`; do not edit by hand (rerun the script).",
        "Load it with `ledgformer.embedded.load_embedded()` (records: `device` = platform card name).",
        "",
        "## How it was measured",
        "",
        f"- Command: `{man['command']}` (process niceness {man['niceness']})",
        f"- Date (UTC): {man['started']} to {man['finished']} ({result['seconds'] / 60:.1f} min)",
        f"- Machine: {man['machine_text']}",
        f"- Machine notes: {man['machine_notes']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in man['versions'].items())}",
        f"- Load: {_load_summary(rows)}. The machine was shared with other jobs while this ran, so "
        "absolute figures carry that noise; the spread check below rejected the worst of it.",
        f"- Protocol: per variant, export to ONNX once (opset 17, BatchNorm kept), then on each platform "
        f"{man['settings']['warmup']} warm-up runs and {man['settings']['repeat']} timed runs "
        f"(`time.perf_counter`), {man['settings']['threads']} thread(s), fp32, batch as drawn. A measurement "
        f"is kept when IQR / median <= {man['settings']['max_spread']}; otherwise it is retried with twice "
        f"the runs (up to {man['settings']['retries']} retries) and then listed in failures.json, not kept.",
        f"- Variants: families {', '.join(man['families'])}; {man['settings']['count']} per family planned "
        f"(seed {man['settings']['seed']}, at most {man['settings']['max_macs']:.3g} MACs per batch); "
        f"{len(result['graphs'])} of {result['planned']} variants processed"
        + (
            f" (stopped by the time limit after {result['stopped_at']})."
            if result["stopped_at"] is not None
            else "."
        ),
        "",
        "## Contents",
        "",
        f"- {len(result['graphs'])} graphs, {len(rows)} measurements, {len(result['failures'])} failures "
        f"(unstable or not exportable).",
        f"- Relative spread (IQR / median) of kept measurements: median {statistics.median(spreads):.3f}, "
        f"max {max(spreads):.3f}."
        if spreads
        else "- No measurement kept.",
        "",
        "| platform | measurements | median latency (ms) | min | max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in sorted(by_platform.items()):
        lines.append(
            f"| `{name}` | {len(values)} | {statistics.median(values):.3f} | {min(values):.3f} | "
            f"{max(values):.3f} |"
        )
    lines += [
        "",
        "Files: graphs.json.gz (ArchGraph IR per variant, with its family config), measurements.json "
        "(one row per measurement, all run times included), failures.json, manifest.json, "
        "cards/<platform>.yaml (hardware cards; `ledgformer.embedded.load_embedded_card(name)`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # exports and shape runs too: no contention with the timed runs
    families = list_families() if args.families == "all" else [f.strip() for f in args.families.split(",")]
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = measure_all(args, families, platforms)
    from ledgformer.measure import detect_card

    card = detect_card(platforms[0], args.threads, "fp32", prefix="embedded")
    argv_text = shlex.join(sys.argv if argv is None else ["benchmarks/build_embedded.py", *argv])
    manifest = {
        "command": argv_text,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine_text": card.to_text().split(", ONNX Runtime")[0],
        "machine_notes": card.notes,
        "versions": _versions(),
        "families": families,
        "platforms": platforms,
        "settings": {
            k: getattr(args, k)
            for k in (
                "count",
                "seed",
                "threads",
                "warmup",
                "repeat",
                "max_spread",
                "retries",
                "max_macs",
                "time_limit",
            )
        },
        "counts": {
            "graphs": len(result["graphs"]),
            "measurements": len(result["rows"]),
            "failures": len(result["failures"]),
            "planned_variants": result["planned"],
            "stopped_at": result["stopped_at"],
        },
        "seconds": round(result["seconds"], 1),
    }
    write_outputs(Path(args.out), result, manifest)
    print(
        f"wrote {len(result['graphs'])} graphs, {len(result['rows'])} measurements, "
        f"{len(result['failures'])} failures to {args.out} in {result['seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
