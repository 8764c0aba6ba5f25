"""Parse time of ``load_onnx`` per model: median of N runs, one thread, export/load excluded.

Each model is built and exported to an in-memory ModelProto once (the state right after
``onnx.load``); only ``load_onnx`` on that proto is timed. Writes results/parse_speed.json (with
machine info, library versions and the command) and results/parse_speed.md.

    .venv/bin/python benchmarks/parse_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from ledgformer.graph.onnx_import import load_onnx
from ledgformer.graph.torch_import import export_onnx
from ledgformer.graph.zoo import build_module

MODELS = [
    "pytorchcv:resnet18", "pytorchcv:resnet50", "pytorchcv:mobilenetv2b_w1",
    "pytorchcv:mobilenetv3_large_w1", "pytorchcv:squeezenet_v1_1", "torchvision:googlenet",
    "pytorchcv:efficientnet_b0", "pytorchcv:densenet121", "timm:vit_tiny_patch16_224",
]
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("ledgformer", "onnx", "torch", "torchvision", "timm", "pytorchcv", "numpy", "protobuf"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _machine() -> dict[str, object]:
    from ledgformer.train.bench import machine_info

    return {**machine_info(), "threads": 1}


def measure(spec: str, repeats: int) -> dict[str, object]:
    module, shape = build_module(spec)
    model = export_onnx(module, shape)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        graph = load_onnx(model, input_shape=shape, name=spec)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "model": spec, "input_shape": list(shape), "onnx_nodes": len(model.graph.node),
        "ir_nodes": len(graph), "gmacs": round(graph.macs / 1e9, 4), "params": graph.params,
        "median_ms": round(statistics.median(times), 2), "runs_ms": [round(t, 2) for t in times],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=MODELS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for spec in args.models:
        rows.append(measure(spec, args.repeats))
        row = rows[-1]
        print(f"{spec:34s} {row['median_ms']:8.2f} ms  ({row['onnx_nodes']} ONNX nodes)", flush=True)
    report = {
        "what": "load_onnx wall time on an in-memory ModelProto (export and onnx.load excluded)",
        "statistic": f"median of {args.repeats} runs",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": _machine(), "versions": _versions(),
        "results": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parse_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# ONNX parse speed", "",
        f"`load_onnx` on an in-memory ModelProto, {report['statistic']}, 1 thread; export and "
        "`onnx.load` excluded.", "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cores']} cores, shared). "
        f"Command: `{report['command']}` ({report['date']}).", "",
        "| model | ONNX nodes | IR nodes | GMACs | params | median ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['onnx_nodes']} | {r['ir_nodes']} | {r['gmacs']} | {r['params']:,} | "
              f"{r['median_ms']} |" for r in rows]
    (RESULTS / "parse_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
