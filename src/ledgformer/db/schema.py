"""Tables of the latency database (SQLAlchemy 2 declarative models).

The schema itself is created and upgraded by the Alembic migrations in ``db/migrations``; these
models are what the code reads and writes. Keep both in step: a change here needs a new revision
there (``tests/test_db.py`` checks that a migrated database matches these models).

* ``graphs``: one row per distinct network, keyed by ``ArchGraph.content_hash()``; the IR JSON is
  stored zlib-compressed (a ResNet-50 IR is ~300 KB of JSON, ~25 KB compressed).
* ``platforms``: a named platform setting with its hardware card (JSON) and the runtime fields
  that queries filter on.
* ``measurements``: one complete measurement per row: every repeat time as a JSON array plus the
  median and IQR, written in one INSERT so a row is either whole or absent.
* ``predictions``: a value some predictor (name + version) gave for a graph on a platform.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso_utc(when: dt.datetime) -> str:
    """ISO time in UTC (SQLite hands back naive datetimes; we always store UTC)."""
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).isoformat()


class Base(DeclarativeBase):
    """Declarative base of the latency database."""


class GraphRow(Base):
    __tablename__ = "graphs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    source: Mapped[str] = mapped_column(String(300), default="")
    ir_version: Mapped[int] = mapped_column(Integer)
    #: zlib-compressed ``ArchGraph.to_json()``
    ir_json_z: Mapped[bytes] = mapped_column(LargeBinary)
    n_nodes: Mapped[int] = mapped_column(Integer)
    macs: Mapped[int] = mapped_column(BigInteger)
    flops: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[int] = mapped_column(BigInteger)
    batch_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlatformRow(Base):
    __tablename__ = "platforms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    #: ``HardwareCard.to_dict()`` as JSON (sorted keys, so equal cards compare equal as text)
    card_json: Mapped[str] = mapped_column(Text)
    runtime: Mapped[str | None] = mapped_column(String(100), nullable=True)
    runtime_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    threads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    precision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MeasurementRow(Base):
    __tablename__ = "measurements"
    __table_args__ = (Index("ix_measurements_graph_platform", "graph_hash", "platform_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    graph_hash: Mapped[str] = mapped_column(ForeignKey("graphs.hash", ondelete="CASCADE"))
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    batch_size: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float] = mapped_column(Float)
    iqr_ms: Mapped[float] = mapped_column(Float)
    n_repeats: Mapped[int] = mapped_column(Integer)
    #: JSON array of every repeat time in ms (``n_repeats`` entries)
    times_ms: Mapped[str] = mapped_column(Text)
    runtime: Mapped[str | None] = mapped_column(String(100), nullable=True)
    threads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tool_version: Mapped[str] = mapped_column(String(50))
    #: anything else the measuring tool reported (JSON object)
    extra_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("graph_hash", "platform_id", "predictor", "predictor_version",
                         name="uq_predictions_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    graph_hash: Mapped[str] = mapped_column(ForeignKey("graphs.hash", ondelete="CASCADE"))
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    predictor: Mapped[str] = mapped_column(String(200))
    predictor_version: Mapped[str] = mapped_column(String(100))
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


__all__ = ["Base", "GraphRow", "MeasurementRow", "PlatformRow", "PredictionRow", "iso_utc", "utcnow"]
