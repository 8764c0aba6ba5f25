"""Load test of ``ledgformer serve``: concurrent POST /predict requests on loopback.

Starts the real CLI server (``python -m ledgformer.cli.main serve``) in a subprocess on a free port
with a fresh SQLite database, seeded with *real* measurements of two models on this machine
(``ledgformer.measure``, onnxruntime, 1 thread). Then ``--requests`` requests go out with at most
``--concurrency`` in flight (asyncio + httpx), cycling through three kinds:

* ``ir-measured``: ResNet-18 as IR JSON -> the stored measurement;
* ``ir-predicted``: MobileNetV2 as IR JSON -> predicted (``--predictor``, default ``flops``: the
  fallback fitted on the seeded measurements);
* ``onnx-upload``: SqueezeNet 1.1 as an ONNX file (multipart) -> parsed server-side, measured.

Reports client-side latency percentiles per kind and overall, throughput and every error into
results/serve_load.json and results/serve_load.md; exits 1 on any error. Bounded in count
(``--requests``) and time (``--time-limit`` for the whole run, ``--timeout`` per request).

    .venv/bin/python benchmarks/serve_load.py [--requests 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx

from ledgformer.db import LatencyDB
from ledgformer.graph.torch_import import export_onnx
from ledgformer.graph.zoo import build_module, load_model
from ledgformer.measure import measure

RESULTS = Path(__file__).resolve().parents[1] / "results"
MEASURED = ("pytorchcv:resnet18", "pytorchcv:squeezenet_v1_1")
PREDICTED = "pytorchcv:mobilenetv2b_w1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0}
    return {"n": len(latencies), "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90),
            "p99_ms": _percentile(latencies, 99), "max_ms": max(latencies),
            "mean_ms": statistics.fmean(latencies)}


def seed(db_url: str) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Measure two models for real into the database; returns the platform, what was stored, payloads."""
    stored = []
    with LatencyDB(db_url) as db:
        for spec in MEASURED:
            m = measure(spec, runtime="onnxruntime", threads=1, warmup=3, repeat=20, max_rel_iqr=1.0)
            db.add_measurement(load_model(spec), m.platform, m)
            stored.append({"model": spec, "platform": m.platform, "median_ms": m.median_ms,
                           "iqr_ms": m.iqr_ms, "runs": len(m.times_ms)})
    plat = stored[0]["platform"]
    module, shape = build_module(MEASURED[1])
    onnx_bytes = export_onnx(module, shape).SerializeToString()
    payloads = {
        "ir-measured": {"json": {"graph": load_model(MEASURED[0]).to_dict(), "platform": plat}},
        "ir-predicted": {"json": {"graph": load_model(PREDICTED).to_dict(), "platform": plat}},
        "onnx-upload": {"files": {"file": ("squeezenet_v1_1.onnx", onnx_bytes, "application/octet-stream")},
                        "data": {"platform": plat}},
    }
    return plat, stored, payloads


async def fire(base: str, payloads: dict[str, Any], n: int, concurrency: int, timeout: float,
               time_limit: float) -> tuple[list[dict[str, Any]], float]:
    kinds = list(payloads)
    gate = asyncio.Semaphore(concurrency)
    results: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def one(i: int) -> None:
            kind = kinds[i % len(kinds)]
            async with gate:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", **payloads[kind])
                    ok = r.status_code == 200
                    body = r.json() if ok else {}
                    error = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as err:
                    body, error = {}, f"{type(err).__name__}: {err}"
                results.append({"kind": kind, "ms": (time.perf_counter() - t0) * 1e3, "error": error,
                                "source": body.get("source"), "latency_ms": body.get("latency_ms")})

        start = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=time_limit)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - start
    for _ in pending:
        results.append({"kind": "?", "ms": wall * 1e3, "error": f"not finished within {time_limit} s",
                        "source": None, "latency_ms": None})
    return results, wall


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ledgformer", "fastapi", "starlette", "uvicorn", "httpx", "sqlalchemy", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_reports(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    cfg, overall = report["config"], report["overall"]
    lines = [
        "# Service load test (`ledgformer serve`)", "",
        f"{cfg['requests']} POST /predict requests, at most {cfg['concurrency']} in flight, on loopback "
        f"(asyncio + httpx client, uvicorn server in its own process, SQLite database). "
        f"Latencies are client-side, request sent to response read.", "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cpu_count']} cores, shared with other "
        f"jobs; load average {report['machine']['load_avg_before']:.2f} before the run). "
        f"Command: `{report['command']}` ({report['date']}).", "",
        f"**{overall['n']} requests, {report['errors']} errors, {report['throughput_rps']:.1f} requests/s, "
        f"p50 {overall['p50_ms']:.0f} ms, p99 {overall['p99_ms']:.0f} ms** (wall {report['wall_s']:.1f} s).",
        "",
        "| kind | requests | answer | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for kind, s in report["per_kind"].items():
        lines.append(f"| {kind} | {s['n']} | {s['answer']} | {s['p50_ms']:.0f} | {s['p90_ms']:.0f} | "
                     f"{s['p99_ms']:.0f} | {s['max_ms']:.0f} |")
    lines += ["", "Seeded measurements (real, this machine, onnxruntime 1 thread, before the load test):", ""]
    lines += [f"- {m['model']} on `{m['platform']}`: median {m['median_ms']:.2f} ms, "
              f"IQR {m['iqr_ms']:.2f} ms ({m['runs']} runs)" for m in report["seeded"]]
    if report["error_samples"]:
        lines += ["", "Errors (first 10):", ""] + [f"- {e}" for e in report["error_samples"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    ap.add_argument("--time-limit", type=float, default=300.0, help="whole load phase, seconds")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_load")
    ap.add_argument("--predictor", default="flops",
                    help="serve's --predictor (default flops: the fallback fitted on the seeded "
                    "measurements, as in results/serve_load.md; 'latency-all' loads the learned one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'latency.db'}"
        plat, stored, payloads = seed(db_url)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "ledgformer.cli.main", "serve", "--port", str(port),
                                   "--db", db_url, "--log-level", "warning", "--predictor", args.predictor])
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not come up")
                time.sleep(0.2)
            load_before = os.getloadavg()[0]
            results, wall = asyncio.run(fire(base, payloads, args.requests, args.concurrency, args.timeout,
                                             args.time_limit))
        finally:
            server.terminate()
            server.wait(timeout=20)

    errors = [r for r in results if r["error"]]
    ok = [r for r in results if not r["error"]]
    per_kind = {}
    for kind in payloads:
        rows = [r for r in ok if r["kind"] == kind]
        answers = sorted({f"{r['source']} {r['latency_ms']:.3g} ms" for r in rows})
        per_kind[kind] = {**_summary([r["ms"] for r in rows]), "answer": ", ".join(answers)}
    report = {
        "command": " ".join(["python benchmarks/serve_load.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"requests": args.requests, "concurrency": args.concurrency, "timeout_s": args.timeout,
                   "time_limit_s": args.time_limit, "platform": plat},
        "machine": {"cpu": _cpu(), "cpu_count": os.cpu_count(), "system": platform.platform(),
                    "load_avg_before": load_before},
        "versions": _versions(), "seeded": stored, "wall_s": wall,
        "throughput_rps": len(ok) / wall if wall > 0 else 0.0, "errors": len(errors),
        "error_samples": [f"{r['kind']}: {r['error']}" for r in errors[:10]],
        "overall": _summary([r["ms"] for r in ok]), "per_kind": per_kind,
    }
    write_reports(report, args.out)
    print(json.dumps({k: report[k] for k in ("errors", "throughput_rps", "overall")}, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
