"""LatencyDB: the measured and predicted latencies of graphs on platforms, in SQLite or PostgreSQL.

Every write is one transaction (``engine.run_write``): a measurement, with the graph and platform
it needs, is committed whole or not at all, also when the process is killed mid-write. Graphs are
keyed by ``ArchGraph.content_hash()``, so the same network added twice is stored once.
"""

from __future__ import annotations

import json
import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ledgformer import __version__
from ledgformer.data.records import BenchmarkData
from ledgformer.db import export
from ledgformer.db.engine import ensure_schema, make_engine, resolve_url, run_write
from ledgformer.db.schema import GraphRow, MeasurementRow, PlatformRow, PredictionRow, iso_utc, utcnow
from ledgformer.errors import LedgformerError
from ledgformer.graph.ir import ArchGraph
from ledgformer.hardware import HardwareCard, load_card


class MeasurementLike(Protocol):
    """What ``add_measurement`` reads from a ``ledgformer.measure.Measurement``.

    Optional attributes, read when present: ``batch_size``, ``runtime``, ``threads``,
    ``tool_version``, ``card`` (the detected HardwareCard, used to add an unknown platform).
    Everything else ``to_dict()`` (or else ``extra``) reports is kept in ``extra_json``.
    """

    median_ms: float
    iqr_ms: float
    #: every repeat time in ms
    times_ms: Sequence[float]


@dataclass(frozen=True)
class MeasurementInfo:
    """A stored measurement, as ``latest_measurement`` returns it."""

    id: int
    graph_hash: str
    platform: str
    batch_size: int
    median_ms: float
    iqr_ms: float
    n_repeats: int
    runtime: str | None
    threads: int | None
    tool_version: str
    measured_at: str


@dataclass(frozen=True)
class PlatformInfo:
    name: str
    runtime: str | None
    threads: int | None
    precision: str | None
    measurements: int


def card_json(card: HardwareCard) -> str:
    return json.dumps(card.to_dict(), sort_keys=True)


class LatencyDB:
    """The latency database at ``url`` (a SQLAlchemy URL or SQLite file path; None = default)."""

    def __init__(self, url: str | None = None, *, migrate: bool = True, busy_timeout_s: float = 30.0):
        self.url = resolve_url(url)
        self.engine = make_engine(self.url, busy_timeout_s)
        self.revision = ensure_schema(self.engine, migrate)

    def __repr__(self) -> str:
        return f"LatencyDB({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password masked (safe to print and log)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> LatencyDB:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- writes ----------------------------------------------------------------------------
    def _insert(self, table: Any) -> Any:
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    def _put_graph(self, conn: Connection, graph: ArchGraph) -> str:
        h = graph.content_hash()
        conn.execute(self._insert(GraphRow).values(
            hash=h, name=str(graph.meta.get("name", ""))[:300],
            source=str(graph.meta.get("source", ""))[:300],
            ir_version=int(graph.to_dict()["ir_version"]),
            ir_json_z=zlib.compress(graph.to_json().encode(), 6), n_nodes=len(graph),
            macs=graph.macs, flops=graph.flops, params=graph.params,
            batch_size=graph.meta.get("batch_size"), created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["hash"]))
        return h

    def _put_platform(self, conn: Connection, name: str, card: HardwareCard, replace: bool) -> int:
        text = card_json(card)
        conn.execute(self._insert(PlatformRow).values(
            name=name, card_json=text, runtime=card.runtime, runtime_version=card.runtime_version,
            threads=card.threads, precision=card.precision, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["name"]))
        pid, stored = conn.execute(
            select(PlatformRow.id, PlatformRow.card_json).where(PlatformRow.name == name)).one()
        if stored != text:
            if not replace:
                raise LedgformerError(
                    f"platform {name!r} is already in the database with a different hardware card; "
                    "use another platform name, or replace the card (ledgformer db add-platform --replace)")
            conn.execute(update(PlatformRow).where(PlatformRow.id == pid).values(
                card_json=text, runtime=card.runtime, runtime_version=card.runtime_version,
                threads=card.threads, precision=card.precision))
        return int(pid)

    def _platform_id(self, conn: Connection, name: str) -> int | None:
        return conn.execute(select(PlatformRow.id).where(PlatformRow.name == name)).scalar()

    def add_graph(self, graph: ArchGraph) -> str:
        """Store ``graph`` (a no-op when already stored); returns its content hash."""
        return run_write(self.engine, lambda conn: self._put_graph(conn, graph))

    def add_platform(self, name: str, card: HardwareCard | str, *, replace: bool = False) -> int:
        """Register platform ``name`` with its card (a card or a card name); returns its id.

        Adding the same name with the same card again is a no-op; with a different card it is an
        error unless ``replace`` (measurements keep pointing at the platform).
        """
        if not name.strip():
            raise LedgformerError("a platform name must not be empty")
        hw = card if isinstance(card, HardwareCard) else load_card(card)
        return run_write(self.engine, lambda conn: self._put_platform(conn, name, hw, replace))

    def add_measurement(self, graph: ArchGraph, platform: str, measurement: MeasurementLike) -> int:
        """Store one measurement of ``graph`` on ``platform`` in one transaction; returns its id.

        The graph is added if missing; an unknown platform is added from ``measurement.card``.
        """
        times = [float(t) for t in measurement.times_ms]
        median, iqr = float(measurement.median_ms), float(measurement.iqr_ms)
        if not times or not all(math.isfinite(t) and t > 0 for t in times):
            raise LedgformerError(f"measurement on {platform!r}: times_ms must be a non-empty list of "
                                  "positive finite milliseconds")
        if not (math.isfinite(median) and median > 0 and math.isfinite(iqr) and iqr >= 0):
            raise LedgformerError(f"measurement on {platform!r}: median_ms must be > 0 and iqr_ms >= 0, "
                                  f"got {median} and {iqr}")
        card = getattr(measurement, "card", None)
        batch = getattr(measurement, "batch_size", None) or graph.meta.get("batch_size") or 1
        extra = _extra_fields(measurement)

        def _write(conn: Connection) -> int:
            h = self._put_graph(conn, graph)
            pid = self._platform_id(conn, platform)
            if pid is None:
                if card is None:
                    raise LedgformerError(f"platform {platform!r} is not in the database; add it first "
                                          "(add_platform) or pass a measurement with its card")
                pid = self._put_platform(conn, platform, card, replace=False)
            row = conn.execute(self._insert(MeasurementRow).values(
                graph_hash=h, platform_id=pid, batch_size=int(batch), median_ms=median, iqr_ms=iqr,
                n_repeats=len(times), times_ms=json.dumps(times),
                runtime=getattr(measurement, "runtime", None), threads=getattr(measurement, "threads", None),
                tool_version=str(getattr(measurement, "tool_version", None) or __version__),
                extra_json=json.dumps(extra, sort_keys=True, default=str), created_at=utcnow(),
            ).returning(MeasurementRow.id))
            return int(row.scalar_one())

        return run_write(self.engine, _write)

    def add_prediction(self, graph: ArchGraph | str, platform: str, predictor: str, version: str,
                       latency_ms: float) -> None:
        """Store (or refresh) what ``predictor`` ``version`` says for the graph on ``platform``."""
        if not (math.isfinite(latency_ms) and latency_ms > 0):
            raise LedgformerError(f"prediction by {predictor}: latency must be > 0 ms, got {latency_ms}")

        def _write(conn: Connection) -> None:
            h = graph if isinstance(graph, str) else self._put_graph(conn, graph)
            pid = self._platform_id(conn, platform)
            if pid is None:
                raise LedgformerError(f"platform {platform!r} is not in the database; add it first")
            stmt = self._insert(PredictionRow).values(
                graph_hash=h, platform_id=pid, predictor=predictor, predictor_version=version,
                latency_ms=float(latency_ms), created_at=utcnow())
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["graph_hash", "platform_id", "predictor", "predictor_version"],
                set_={"latency_ms": stmt.excluded.latency_ms, "created_at": stmt.excluded.created_at}))

        run_write(self.engine, _write)

    # ---- reads -----------------------------------------------------------------------------
    def latest_measurement(self, graph_hash: str, platform: str) -> MeasurementInfo | None:
        """The newest measurement of the graph on ``platform``, or None."""
        stmt = (select(MeasurementRow).join(PlatformRow)
                .where(MeasurementRow.graph_hash == graph_hash, PlatformRow.name == platform)
                .order_by(MeasurementRow.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        m = row._mapping
        return MeasurementInfo(
            id=m["id"], graph_hash=m["graph_hash"], platform=platform, batch_size=m["batch_size"],
            median_ms=m["median_ms"], iqr_ms=m["iqr_ms"], n_repeats=m["n_repeats"], runtime=m["runtime"],
            threads=m["threads"], tool_version=m["tool_version"], measured_at=iso_utc(m["created_at"]))

    def lookup(self, graph_hash: str, platform: str) -> float | None:
        """The measured median (ms) of the graph on ``platform`` (newest measurement), or None."""
        info = self.latest_measurement(graph_hash, platform)
        return None if info is None else info.median_ms

    def prediction(self, graph_hash: str, platform: str, predictor: str, version: str) -> float | None:
        stmt = (select(PredictionRow.latency_ms).join(PlatformRow)
                .where(PredictionRow.graph_hash == graph_hash, PlatformRow.name == platform,
                       PredictionRow.predictor == predictor, PredictionRow.predictor_version == version))
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def platform_card(self, name: str) -> HardwareCard | None:
        """The card stored for platform ``name``, or None when the platform is not in the database."""
        with self.engine.connect() as conn:
            text = conn.execute(select(PlatformRow.card_json).where(PlatformRow.name == name)).scalar()
        return None if text is None else load_card(json.loads(text))

    def platforms(self) -> list[PlatformInfo]:
        counts = (select(PlatformRow.name, PlatformRow.runtime, PlatformRow.threads, PlatformRow.precision,
                         func.count(MeasurementRow.id))
                  .outerjoin(MeasurementRow).group_by(PlatformRow.id).order_by(PlatformRow.name))
        with self.engine.connect() as conn:
            return [PlatformInfo(*r) for r in conn.execute(counts)]

    def graph(self, graph_hash: str) -> ArchGraph:
        with self.engine.connect() as conn:
            blob = conn.execute(select(GraphRow.ir_json_z).where(GraphRow.hash == graph_hash)).scalar()
        if blob is None:
            raise LedgformerError(f"graph {graph_hash} is not in the database")
        return ArchGraph.from_json(zlib.decompress(blob).decode())

    def flops_and_medians(self, platform: str) -> list[tuple[int, float]]:
        """(graph FLOPs, newest measured median ms) of every graph measured on ``platform``."""
        return [(f, m) for _, f, m, _ in self._latest_rows(platform)]

    def _latest_rows(self, platform: str | None = None) -> list[tuple[str, int, float, int]]:
        """(graph hash, FLOPs, median, measurement id) of the newest measurement per graph/platform."""
        newest = (select(func.max(MeasurementRow.id).label("id"))
                  .group_by(MeasurementRow.graph_hash, MeasurementRow.platform_id))
        stmt = (select(MeasurementRow.graph_hash, GraphRow.flops, MeasurementRow.median_ms, MeasurementRow.id)
                .join(GraphRow).join(PlatformRow).where(MeasurementRow.id.in_(newest))
                .order_by(MeasurementRow.id))
        if platform is not None:
            stmt = stmt.where(PlatformRow.name == platform)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    def stats(self) -> dict[str, Any]:
        """Row counts overall and per platform, the schema revision, and the file size (SQLite)."""
        with self.engine.connect() as conn:
            totals = {t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in (GraphRow, PlatformRow, MeasurementRow, PredictionRow)}
            preds = dict(conn.execute(select(PlatformRow.name, func.count(PredictionRow.id))
                                      .outerjoin(PredictionRow).group_by(PlatformRow.id)).all())
        out: dict[str, Any] = {"url": self.display_url, "dialect": self.dialect,
                               "schema_revision": self.revision, **totals}
        out["per_platform"] = [{"platform": p.name, "runtime": p.runtime, "threads": p.threads,
                                "measurements": p.measurements, "predictions": preds.get(p.name, 0)}
                               for p in self.platforms()]
        if self.dialect == "sqlite" and self.engine.url.database:
            path = Path(self.engine.url.database)
            out["size_bytes"] = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return out

    def verify(self) -> list[str]:
        """Problems found (empty = healthy): SQLite integrity and foreign keys, incomplete measurements."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if result != ["ok"]:
                    problems += [f"integrity_check: {r}" for r in result]
                problems += [f"foreign key broken: {tuple(r)}"
                             for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
            rows = conn.execute(select(MeasurementRow.id, MeasurementRow.n_repeats, MeasurementRow.times_ms,
                                       MeasurementRow.median_ms))
            for mid, n, times_text, median in rows:
                times = json.loads(times_text)
                if len(times) != n or not times:
                    problems.append(f"measurement {mid}: {len(times)} repeat times stored, "
                                    f"n_repeats says {n}")
                elif not min(times) <= median <= max(times):
                    problems.append(f"measurement {mid}: median {median} outside its repeat times")
        return problems

    # ---- export ----------------------------------------------------------------------------
    def export_records(self, name: str = "latency-db") -> BenchmarkData:
        """The newest measurement per (graph, platform) as our training format (``Record`` s)."""
        return export.to_records(self, name)

    def export_nnlqp(self, folder: str | Path) -> Path:
        """An NNLQP-style folder: ``gt.txt``, the IR JSON of every graph, the platform cards."""
        return export.to_nnlqp(self, Path(folder))


#: Measurement fields stored in their own columns (or, for the card, in ``platforms``)
_COLUMN_FIELDS = frozenset({"median_ms", "iqr_ms", "times_ms", "runtime", "threads", "batch_size", "card",
                            "tool_version", "platform"})


def _extra_fields(measurement: object) -> dict[str, Any]:
    """The measurement's other fields (timestamp, load, input shape ...), kept as JSON."""
    to_dict = getattr(measurement, "to_dict", None)
    raw = to_dict() if callable(to_dict) else (getattr(measurement, "extra", None) or {})
    return {k: v for k, v in dict(raw).items() if k not in _COLUMN_FIELDS}


def median_iqr(times: Sequence[float]) -> tuple[float, float]:
    """Median and inter-quartile range (inclusive quartiles) of repeat times."""
    if len(times) == 1:
        return float(times[0]), 0.0
    q1, q2, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q2, q3 - q1


__all__ = ["LatencyDB", "MeasurementInfo", "MeasurementLike", "PlatformInfo", "card_json", "median_iqr"]
