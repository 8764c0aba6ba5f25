"""Speed of the user API: a warm ``ledgformer predict`` call and ranking all 15,625 NB201 archs.

* ``ledgformer predict`` as a fresh process (what a user types), after one call that filled the
  caches (text embeddings on disk, parsed zoo graphs): median wall time of ``--repeats`` runs.
* ``Predictor.rank`` of every NAS-Bench-201 network for one device, then for two more devices,
  with the text embeddings already on disk: the first pass builds, featurises and encodes every
  graph; later devices reuse the in-memory device-independent encodings (late fusion,
  ``hw_layers=0``) and pay only the readout. The accuracy predictor is ranked twice the same way.

The CLI calls use the shipped predictors a user gets by default (``help-nb201-latency`` for an
NB201 cell, ``latency-all`` for an ONNX file, ``nb201-acc`` without ``--hardware``) unless
``--predictor`` names a latency checkpoint; ranking uses ``help-nb201-latency`` or that
checkpoint. Caches live in a fresh temporary folder, so the first call is cold. Writes
``results/api_speed.{json,md}``.

    python benchmarks/api_speed.py [--n 15625] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEVICES = ("help/1080ti_1", "help/pixel3", "help/raspi4")


def cli_times(argv: list[str], repeats: int) -> dict[str, Any]:
    """Wall seconds of ``ledgformer ARGV`` as new processes: the first (cold) call, then warm ones."""
    return cli_times_of([sys.executable, "-m", "ledgformer.cli.main", *argv], "ledgformer " + " ".join(argv),
                        repeats)


def cli_times_of(cmd: list[str], label: str, repeats: int) -> dict[str, Any]:
    def once() -> float:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{label} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return time.perf_counter() - t0

    first = once()
    warm = [once() for _ in range(repeats)]
    return {"command": label, "first_s": first, "warm_s": warm,
            "warm_median_s": statistics.median(warm)}


def rank_times(predictor: str, archs: list[str], devices: tuple[str | None, ...]) -> list[dict]:
    """Seconds to rank ``archs`` for each device in turn, in one Predictor with warm disk caches.

    A throw-away Predictor first embeds the node texts (those of the first 1,000 archs cover every
    NB201 op and shape) and the cards, so the timed one reads embeddings from disk; whether its
    language model was loaded anyway is recorded (``encoder_loaded``)."""
    from ledgformer.api import Predictor

    warm = Predictor.load(predictor)
    card = devices[0] if devices[0] is not None else None
    warm.predict(archs[:1000], card)
    if card is not None:
        warm.predict(archs[0], list(devices))
    p = Predictor.load(predictor)
    rows = []
    for dev in devices:
        t0 = time.perf_counter()
        order = p.rank(archs, dev)
        rows.append({"device": dev, "seconds": time.perf_counter() - t0, "best": archs[int(order[0])],
                     "encoder_loaded": getattr(p.encoder, "_model", None) is not None})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=15625, help="archs ranked (default: all 15,625)")
    ap.add_argument("--repeats", type=int, default=5, help="warm CLI calls timed (default 5)")
    ap.add_argument("--predictor", default=None, help="latency checkpoint (default: the shipped ones)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in-process (default 1, as the "
                    "CLI's default)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ledgformer-api-speed-"))
    os.environ["LEDGFORMER_CACHE"] = str(tmp / "cache")
    import torch

    torch.set_num_threads(args.threads)

    from ledgformer.spaces import nb201

    chosen = ["--predictor", args.predictor] if args.predictor else []
    onnx = tmp / "resnet18.onnx"
    from ledgformer.graph.torch_import import export_onnx
    from ledgformer.graph.zoo import build_module

    module, shape = build_module("pytorchcv:resnet18")
    onnx.write_bytes(export_onnx(module, shape).SerializeToString())
    cli = [
        cli_times_of([sys.executable, "-c", "import torch"], "python -c 'import torch' (the floor)",
                     args.repeats),
        cli_times(["predict", ARCH, "--hardware", "help/pixel3", *chosen, "--json"], args.repeats),
        cli_times(["predict", str(onnx), "--hardware", "help/pixel3", *chosen, "--json"], args.repeats),
        cli_times(["predict", ARCH, "--predictor", "nb201-acc", "--json"], args.repeats),
    ]
    archs = nb201.all_arch_strings()[:args.n]
    ranker = args.predictor or "help-nb201-latency"
    rank = {ranker: rank_times(ranker, archs, DEVICES),
            "nb201-acc": rank_times("nb201-acc", archs, (None, None))}
    load = os.getloadavg()
    opts = (f" --n {args.n}" if args.n != 15625 else "") \
        + (f" --threads {args.threads}" if args.threads != 1 else "") \
        + (f" --predictor {args.predictor}" if args.predictor else "")
    out = {"command": "python benchmarks/api_speed.py" + opts,
           "n_archs": len(archs), "cli": cli, "rank": rank,
           "machine": {"cpus": os.cpu_count(), "load_avg_at_end": load, "python": platform.python_version(),
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api_speed.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"<!-- generated by `{out['command']}` -->", "| what | first call s | warm s (median) |",
             "|---|---:|---:|"]
    lines += [f"| `{c['command'].replace(str(onnx), 'resnet18.onnx')}` | "
              f"{c['first_s']:.2f} | {c['warm_median_s']:.2f} |" for c in cli]
    lines += ["", f"| rank {len(archs):,} NB201 archs | device | seconds |", "|---|---|---:|"]
    lines += [f"| {name} | {r['device'] or '-'} | {r['seconds']:.2f} |"
              for name, rows in rank.items() for r in rows]
    lines += ["", f"{os.cpu_count()} CPUs, load average at the end {load[0]:.1f} (shared machine), "
              f"torch threads {torch.get_num_threads()}"]
    (RESULTS / "api_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
