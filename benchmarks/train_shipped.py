"""Train the predictors shipped inside the package and write their checkpoints + manifest entries.

Each shipped predictor is one ``ledgformer train`` run of a committed config. This script runs
that command (the exact command line is recorded in the manifest), then copies the run's
``model.pt`` to ``src/ledgformer/predictors/<name>.pt`` with what the user API needs added to
the checkpoint's ``extra`` (training / test devices, how NAS arch strings become graphs, the test
metrics), and writes the entry into ``src/ledgformer/predictors/manifest.json``: name, task,
checkpoint file, training data, the command, and the test metrics copied from the run's
``metrics.json``.

    python benchmarks/train_shipped.py --only nb201-acc           # train + package one predictor
    python benchmarks/train_shipped.py --only nb201-acc --package-only   # re-package an existing run
    python benchmarks/train_shipped.py                             # every predictor in SHIPPED
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PREDICTORS = REPO / "src" / "ledgformer" / "predictors"
RUNS = Path("runs") / "shipped"

#: name -> how it is trained. ``overrides`` are ``ledgformer train`` key=value arguments.
SHIPPED: dict[str, dict[str, Any]] = {
    "nb201-acc": {
        "config": "configs/nb201-acc-781.yaml",
        "overrides": ["seed=0"],
        "description": "CIFAR-10 200-epoch validation accuracy (%) of a NAS-Bench-201 cell",
        "inputs": "NAS-Bench-201 cells: arch strings or NASLib op tuples (read as live cells: dead "
                  "ops as 'none', wired by data flow: 'none' ops without edges), or 8-node cell graphs",
        "training_data": "NASLib NAS-Bench-201 CIFAR-10 (nb201_zen_run): 781 labelled archs "
                         "(10 % of them for model selection), seed 0; test = the other 14,844 archs",
    },
    "help-nb201-latency": {
        "config": "configs/help-nb201-zeroshot.yaml",
        "overrides": ["seed=0"],
        "description": "latency (ms) of a NAS-Bench-201 network (CIFAR, 32x32, batch of the card)",
        "inputs": "NAS-Bench-201 networks: arch strings or whole-network graphs",
        "training_data": "HELP NAS-Bench-201 latency: 1,500 archs on each of HELP's 9 training "
                         "devices, model selection on its 4 validation devices, seed 0; test = "
                         "zero-shot on HELP's 6 test devices (800-arch evaluation sets)",
    },
    "latency-all": {
        "config": "configs/latency-all.yaml",
        "overrides": ["seed=0"],
        "description": "latency (ms) of a whole network (ONNX / PyTorch / zoo name) on a hardware card",
        "inputs": "whole networks: ONNX files, torch modules, zoo names, ArchGraphs",
        "training_data": "the embedded set (686 family variants x 3 CPU runtimes of the build machine), "
                         "the mobile ML benchmark (102 real CNNs x 148 phone settings: TFLite / PyTorch "
                         "Mobile, CPU / GPU / NNAPI), HELP's NAS spaces (~500 NAS-Bench-201 and ~500 "
                         "FBNet networks x 27 GPU / CPU / phone / ASIC / FPGA settings, ~500 OFA "
                         "networks x 12 GPU settings incl. V100; NAS-Bench-201 networks whose output "
                         "is cut off from their input left out) and "
                         "Accel-NASBench (~500 MnasNet-space networks x 8 FPGA / A100 / RTX 3090 / TPU "
                         "settings); graph-level random split, 15 % of the networks test, 10 % of the "
                         "rest validate, seed 0",
    },
}
#: metric keys copied into the manifest (every key of metrics.json that starts with one of them)
METRIC_PREFIXES = ("test.", "test_all.", "n_params", "train.best_epoch", "train.train_seconds")


def command(spec: dict[str, Any], out: Path) -> list[str]:
    return ["ledgformer", "train", "--config", spec["config"], *spec["overrides"], f"out={out.as_posix()}"]


def train(name: str, spec: dict[str, Any], out: Path) -> None:
    argv = command(spec, out)
    print(f"[{name}] {shlex.join(argv)}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run([sys.executable, "-m", "ledgformer.cli.main", *argv[1:]], cwd=REPO, env=env, check=True)


def package(name: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy the run's checkpoint into the package (with the API's extras) and return its entry."""
    import torch

    from ledgformer.api.inputs import default_arch_form
    from ledgformer.api.shipped import config_devices
    from ledgformer.train.checkpoint import read_checkpoint

    run = REPO / out
    metrics = json.loads((run / "metrics.json").read_text())
    kept = {k: v for k, v in sorted(metrics.items()) if k.startswith(METRIC_PREFIXES)}
    ckpt = read_checkpoint(run / "model.pt")
    task = "latency" if ckpt["model_config"].get("task") == "latency" else "accuracy"
    devices = spec.get("devices") or ckpt.get("extra", {}).get("devices") or config_devices(ckpt["config"])
    ckpt["extra"] = {**ckpt.get("extra", {}), "shipped_name": name, "devices": devices,
                     "arch_form": default_arch_form(task, ckpt["config"]), "metrics": kept}
    PREDICTORS.mkdir(parents=True, exist_ok=True)
    dest = PREDICTORS / f"{name}.pt"
    torch.save(ckpt, dest)
    blob = dest.read_bytes()
    return {
        "task": task, "checkpoint": dest.name, "size_bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(), "description": spec["description"],
        "inputs": spec["inputs"], "training_data": spec["training_data"],
        "encoder": ckpt["config"]["features"]["encoder"], "devices": devices,
        "command": shlex.join(command(spec, out)),
        "trained_by": f"python benchmarks/train_shipped.py --only {name}", "metrics": kept,
    }


def write_manifest(entries: dict[str, dict[str, Any]]) -> Path:
    path = PREDICTORS / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {"format": 1, "predictors": {}}
    manifest["predictors"].update(entries)
    manifest["predictors"] = dict(sorted(manifest["predictors"].items()))
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help=f"comma-separated names (default: all of {list(SHIPPED)})")
    ap.add_argument("--package-only", action="store_true", help="skip training: package existing runs")
    ap.add_argument("--runs", default=str(RUNS), help=f"run folders, relative to the repo (default {RUNS})")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(SHIPPED)
    unknown = [n for n in names if n not in SHIPPED]
    if unknown:
        ap.error(f"unknown predictor(s) {unknown}; known: {list(SHIPPED)}")
    entries = {}
    for name in names:
        out = Path(args.runs) / name
        if not args.package_only:
            train(name, SHIPPED[name], out)
        entries[name] = package(name, SHIPPED[name], out)
        print(f"[{name}] -> {PREDICTORS / entries[name]['checkpoint']} ({entries[name]['size_bytes']:,} B)")
    print(f"manifest: {write_manifest(entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
