"""Exports of the latency database: our training records, and an NNLQP-style folder.

Both export the newest measurement per (graph, platform); how many older (superseded)
measurements were left out is reported in ``BenchmarkData.meta`` and the folder's README.

The NNLQP layout is its ``gt.txt`` label file (``id model_path batch latency_ms family platform
split``) next to the models. The database stores graphs as IR, not ONNX, so ``model_path`` points
at ``ir/<hash>.json`` (``ArchGraph.from_json`` reads it back) instead of an ``.onnx`` file;
the ``platform`` column is the database's platform id, named in ``platforms.json`` with its card.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ledgformer.data.records import BenchmarkData, Record
from ledgformer.db.schema import GraphRow, MeasurementRow, PlatformRow, iso_utc
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph

if TYPE_CHECKING:
    from ledgformer.db.store import LatencyDB

_README = """NNLQP-style export of a ledgformer latency database ({url}).

gt.txt: one line per (graph, platform), its newest measurement:
  id  model_path  batch  latency_ms  family  platform  split
model_path points at ir/<content hash>.json, the graph as ledgformer IR (ArchGraph.to_json), not
ONNX: the database stores IR only. platform is the id in platforms.json (name + hardware card).
split is "all": the database holds no train/test split.
{n} measurements exported, {superseded} older measurements of the same graph/platform left out.
"""


def _newest_rows(db: LatencyDB) -> tuple[list[Any], int]:
    """Newest measurement rows (with platform name and id) per graph/platform, and the total count."""
    newest = (select(func.max(MeasurementRow.id))
              .group_by(MeasurementRow.graph_hash, MeasurementRow.platform_id))
    m = MeasurementRow
    stmt = (select(m.id, m.graph_hash, m.batch_size, m.median_ms, m.iqr_ms, m.n_repeats, m.runtime, m.threads,
                   m.tool_version, m.created_at, PlatformRow.name.label("platform"), GraphRow.source,
                   GraphRow.name)
            .join(PlatformRow).join(GraphRow).where(MeasurementRow.id.in_(newest))
            .order_by(MeasurementRow.id))
    with db.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(MeasurementRow)).scalar_one()
        rows = list(conn.execute(stmt))
    return rows, int(total)


def _graph_blobs(db: LatencyDB, hashes: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with db.engine.connect() as conn:
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            stmt = select(GraphRow.hash, GraphRow.ir_json_z).where(GraphRow.hash.in_(chunk))
            out.update(conn.execute(stmt).all())
    return out


def _cards(db: LatencyDB) -> dict[str, dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(PlatformRow.id, PlatformRow.name, PlatformRow.card_json))
        return {name: {"id": pid, "card": json.loads(text)} for pid, name, text in rows}


def to_records(db: LatencyDB, name: str) -> BenchmarkData:
    rows, total = _newest_rows(db)
    hashes = sorted({r.graph_hash for r in rows})
    blobs = _graph_blobs(db, hashes)
    graphs = {h: ArchGraph.from_json(zlib.decompress(b).decode()) for h, b in blobs.items()}
    records = []
    for m in rows:
        tags = {"batch_size": m.batch_size, "iqr_ms": m.iqr_ms, "n_repeats": m.n_repeats,
                "runtime": m.runtime, "threads": m.threads, "tool_version": m.tool_version,
                "measurement_id": m.id, "measured_at": iso_utc(m.created_at), "family": m.source or m.name}
        records.append(Record(graph_id=m.graph_hash, target=m.median_ms, kind="latency_ms",
                              device=m.platform, tags=tags))
    meta = {"source": db.display_url, "measurements_total": total, "superseded": total - len(records),
            "cards": {k: v["card"] for k, v in _cards(db).items()}}
    return BenchmarkData(name, graphs, records, meta=meta)


def _token(text: str) -> str:
    """A whitespace-free column value (gt.txt is split on whitespace)."""
    return re.sub(r"\s+", "_", text.strip()) or "-"


def to_nnlqp(db: LatencyDB, folder: Path) -> Path:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise LedgformerError(f"{folder}: the export folder must be new or empty")
    rows, total = _newest_rows(db)
    ir_dir = folder / "ir"
    ir_dir.mkdir(parents=True, exist_ok=True)
    hashes = sorted({r.graph_hash for r in rows})
    for h, blob in _graph_blobs(db, hashes).items():
        (ir_dir / f"{h}.json").write_bytes(zlib.decompress(blob))
    cards = _cards(db)
    lines = []
    for i, m in enumerate(rows, start=1):
        family = _token(str(m.source or m.name).split(":")[-1])
        lines.append(f"{i:05d} ir/{m.graph_hash}.json {m.batch_size} {m.median_ms:.6g} {family} "
                     f"{cards[m.platform]['id']} all\n")
    (folder / "gt.txt").write_text("".join(lines))
    (folder / "platforms.json").write_text(json.dumps(
        {str(v["id"]): {"name": k, "card": v["card"]} for k, v in cards.items()}, indent=1, sort_keys=True))
    (folder / "README.txt").write_text(_README.format(url=db.display_url, n=len(rows),
                                                      superseded=total - len(rows)))
    return folder


def write_records_json(data: BenchmarkData, path: Path) -> Path:
    """``BenchmarkData`` as one JSON file: graphs (IR dicts), records and meta."""
    payload = {"name": data.name, "meta": data.meta,
               "graphs": {k: g.to_dict() for k, g in data.graphs.items()},
               "records": [{"graph_id": r.graph_id, "target": r.target, "kind": r.kind, "device": r.device,
                            "tags": r.tags} for r in data.records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=str))
    return path


__all__ = ["to_nnlqp", "to_records", "write_records_json"]
