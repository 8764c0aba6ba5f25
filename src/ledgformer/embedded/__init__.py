"""The embedded latency data set: family variants measured on this project's build machine.

Written by ``benchmarks/build_embedded.py`` (see README.md in this folder for how it was measured):

* ``graphs.json.gz``: a JSON list, one entry per line: ``{"graph_id", "family", "config", "graph"}``
  (``graph`` is ``ArchGraph.to_dict()`` of the exported ONNX model that was timed);
* ``measurements.json``: a JSON list, one measurement per line (graph_id, platform, median_ms,
  iqr_ms, q1/q3, n_runs, run times, load average ...);
* ``failures.json``: measurements that were not stable enough to keep, with the reason;
* ``cards/<platform name>.yaml``: the hardware card of every platform (``embedded/<cpu>/<runtime>``).

``load_embedded()`` gives a ``BenchmarkData`` whose records' ``device`` is the platform card name;
``load_embedded_card(name)`` loads such a card. ``load_card`` finds them too when
``$LEDGFORMER_CARDS`` lists ``cards_dir()``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import HardwareCard
from ledgformer.hardware.registry import load_card_file

EMBEDDED_DIR = Path(__file__).parent
GRAPHS_FILE = "graphs.json.gz"
MEASUREMENTS_FILE = "measurements.json"
FAILURES_FILE = "failures.json"
MANIFEST_FILE = "manifest.json"
CARDS_DIR = "cards"


def cards_dir(folder: str | Path | None = None) -> Path:
    """The folder of the platform cards (put it in ``$LEDGFORMER_CARDS`` to let ``load_card`` find them)."""
    return Path(folder or EMBEDDED_DIR) / CARDS_DIR


def load_embedded_card(name: str, folder: str | Path | None = None) -> HardwareCard:
    """The card of an embedded platform, e.g. ``embedded/amd-epyc/ort-1t-fp32``."""
    path = cards_dir(folder) / f"{name}.yaml"
    if ".." in Path(name).parts or not path.is_file():
        known = ", ".join(list_embedded_cards(folder)) or "none"
        raise LedgformerError(f"no embedded platform card {name!r}; known: {known}")
    return load_card_file(path)


def list_embedded_cards(folder: str | Path | None = None) -> list[str]:
    base = cards_dir(folder)
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise LedgformerError(
            f"{path}: missing; the embedded data set is built by benchmarks/build_embedded.py"
        )
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LedgformerError(
            f"{path}: not readable JSON ({type(err).__name__}); rebuild the data set"
        ) from err


def load_embedded(folder: str | Path | None = None) -> BenchmarkData:
    """Graphs and latency records of the embedded data set (``folder`` defaults to the packaged one)."""
    base = Path(folder or EMBEDDED_DIR)
    graphs: dict[str, ArchGraph] = {}
    families: dict[str, str] = {}
    for entry in _read_json(base / GRAPHS_FILE):
        graphs[entry["graph_id"]] = ArchGraph.from_dict(entry["graph"])
        families[entry["graph_id"]] = entry["family"]
    records = []
    platforms = set()
    for row in _read_json(base / MEASUREMENTS_FILE):
        gid = row["graph_id"]
        if gid not in graphs:
            raise LedgformerError(f"{base / MEASUREMENTS_FILE}: measurement of unknown graph {gid!r}")
        platforms.add(row["platform"])
        records.append(
            Record(
                graph_id=gid,
                target=float(row["median_ms"]),
                kind="latency_ms",
                device=row["platform"],
                tags={
                    "family": families[gid],
                    "dataset": "embedded",
                    "iqr_ms": row["iqr_ms"],
                    "n_runs": row["n_runs"],
                    "batch_size": row["batch_size"],
                    "runtime": row["runtime"],
                    "threads": row["threads"],
                },
            )
        )
    for name in sorted(platforms):
        load_embedded_card(name, base)  # every platform must have a valid card
    failures_path = base / FAILURES_FILE
    failures = (
        {f"{f['graph_id']}@{f['platform']}": f["reason"] for f in _read_json(failures_path)}
        if failures_path.is_file()
        else {}
    )
    manifest_path = base / MANIFEST_FILE
    meta = _read_json(manifest_path) if manifest_path.is_file() else {}
    return BenchmarkData(name="embedded", graphs=graphs, records=records, meta=meta, failures=failures)


def embedded_machine_text(folder: str | Path | None = None) -> str | None:
    """The machine the embedded set was measured on, as its cards describe it (manifest), or None."""
    path = Path(folder or EMBEDDED_DIR) / MANIFEST_FILE
    return _read_json(path).get("machine_text") if path.is_file() else None


__all__ = ["EMBEDDED_DIR", "cards_dir", "embedded_machine_text", "list_embedded_cards", "load_embedded",
           "load_embedded_card"]
