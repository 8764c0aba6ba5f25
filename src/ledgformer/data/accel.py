"""Accel-NASBench (afzalxo): MnasNet-space archs with ImageNet proxy accuracy and hardware numbers.

``anb_dataset_jsons.tar.gz`` holds one ``result_<n>.json`` per arch, read straight from the
archive: ``architecture`` (7 blocks x expansion/kernel/layers/squeeze-excite), ``metrics``
(``val_top1`` ...), ``model_info`` (MMACs, M params), ``platform_perf`` (``latency_<dev>`` in ms
on the two FPGAs, ``throughput_<dev>`` in images/s on A100, RTX 3090, TPUv2/v3 and the FPGAs).

Records: ``accuracy`` = ``val_top1`` (%); every platform key becomes a ``latency_ms`` record on
card ``anb/<key>``. A throughput is stored as its amortised time per image, 1000 / throughput ms
(``tags["throughput"]`` keeps the raw images/s), so one regression target covers every device;
``meta["throughput_cards"]`` lists the cards whose target was derived that way. A few archs
have no measurement on some device (``null`` in the JSON, e.g. 44 on TPUv3): they get no
record there and are listed in ``meta["unmeasured"]`` (card -> ids).
Ids: ``anb/<n>``; graphs: ``spaces.mnasnet.network_graph`` at 224x224, batch 1, with the
GPU/TPU activation (SiLU); the FPGA builds use ReLU instead, same structure and MACs.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError

FILE = "accel_nasbench/anb_dataset_jsons.tar.gz"


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """``anb/<n>`` -> parsed result JSON, for every ``result_<n>.json`` in the archive."""
    out: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                m = re.fullmatch(r"(?:.*/)?result_(\d+)\.json", member.name)
                if not (m and member.isfile()):
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    raise LedgformerError(f"{path}: cannot read {member.name}")
                out[f"anb/{int(m.group(1))}"] = json.loads(fh.read())
    except (tarfile.TarError, OSError, json.JSONDecodeError) as err:
        raise LedgformerError(f"{path}: cannot be read as Accel-NASBench's tar.gz ({err})") from err
    if not out:
        raise LedgformerError(f"{path}: no result_<n>.json inside")
    return out


def load_accel(root: Path, with_graphs: bool = True, limit: int | None = None,
               show_progress: bool = True) -> BenchmarkData:
    """Accuracy and per-device latency records of every Accel-NASBench arch (see module doc).

    ``limit`` keeps the N archs with the smallest result numbers (a quick subset).
    """
    from ledgformer.hardware import card_name

    path = root / FILE
    results = read_results(path)
    if limit is not None:
        keep = sorted(results, key=lambda gid: int(gid.split("/")[1]))[:limit]
        results = {gid: results[gid] for gid in keep}
    records: list[Record] = []
    throughput_cards: set[str] = set()
    unmeasured: dict[str, list[str]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for gid, res in results.items():
        try:
            configs[gid] = res["architecture"]
            info = {"macs_m": res["model_info"]["macs"], "params_m": res["model_info"]["params"]}
            records.append(Record(gid, float(res["metrics"]["val_top1"]), "accuracy", None,
                                  {"dataset": "imagenet", "val_top5": res["metrics"].get("val_top5"),
                                   **info}))
            for key, perf in res["platform_perf"].items():
                card = card_name("anb", key)
                metric = key.split("_", 1)[0]
                if metric not in ("latency", "throughput"):
                    raise LedgformerError(f"{path}: {gid} has unknown platform key '{key}'")
                value = perf.get(f"{metric}_mean")
                if value is None:
                    unmeasured.setdefault(card, []).append(gid)
                elif metric == "latency":
                    records.append(Record(gid, float(value), "latency_ms", card, info))
                else:
                    records.append(Record(gid, 1000.0 / float(value), "latency_ms", card,
                                          {**info, "throughput": float(value)}))
                    throughput_cards.add(card)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise LedgformerError(f"{path}: result {gid} lacks a field or value ({err!r})") from err
    graphs, failures = {}, {}
    if with_graphs:
        from ledgformer.data.graph_cache import cached_graphs
        from ledgformer.spaces import mnasnet

        graphs, failures = cached_graphs("accel-nasbench", [mnasnet], configs, mnasnet.network_graph,
                                         show_progress)
    return BenchmarkData("accel-nasbench", graphs, records, failures=failures, meta={
        "source": str(path), "unit": "ms (throughput cards: 1000 / images per s)",
        "throughput_cards": sorted(throughput_cards), "unmeasured": unmeasured,
        "target": "val_top1 % (accuracy records)", "graphs": "224x224, batch 1, SiLU (GPU/TPU build)"})


__all__ = ["load_accel", "read_results"]
