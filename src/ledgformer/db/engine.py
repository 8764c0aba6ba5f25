"""Connecting to the latency database: URL resolution, SQLite settings, migrations, write retries.

SQLite (the default, one file) runs in WAL mode with foreign keys on and a busy timeout, and we
emit ``BEGIN`` ourselves (the sqlite3 module's own transaction handling starts transactions late
and never for DDL): writes use ``BEGIN IMMEDIATE`` so two writers queue on the lock instead of
failing half-way, reads a plain ``BEGIN``. PostgreSQL (``postgresql+psycopg://``) is the shared
team database; migrations there hold an advisory lock so two processes never migrate at once.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from platformdirs import user_data_dir
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ledgformer.errors import LedgformerError

T = TypeVar("T")

#: key of the PostgreSQL advisory lock held while migrating (any constant unique to us)
_PG_MIGRATION_LOCK = 0x1ED6F0
_WRITE = "ledgformer_write"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_url() -> str:
    """``$LEDGFORMER_DB`` (a URL or a file path), else ``<user data dir>/ledgformer/latency.db``."""
    env = os.environ.get("LEDGFORMER_DB", "").strip()
    if env:
        return resolve_url(env)
    folder = Path(user_data_dir("ledgformer"))
    return f"sqlite:///{folder / 'latency.db'}"


def resolve_url(url_or_path: str | None) -> str:
    """A SQLAlchemy URL from a URL, a file path (SQLite) or None (the default database)."""
    if not url_or_path:
        return default_url()
    text = str(url_or_path).strip()
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    for bare in ("postgresql://", "postgres://"):
        if text.startswith(bare):  # the psycopg 3 driver is the one we install
            return "postgresql+psycopg://" + text[len(bare):]
    return text


def make_engine(url: str, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url`` with the SQLite settings above; other back-ends than SQLite/PostgreSQL fail."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise LedgformerError(f"database URL {url!r} is not valid: {err}") from err
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    if backend != "sqlite":
        raise LedgformerError(f"database URL {parsed.render_as_string()!r}: only sqlite:///FILE and "
                              "postgresql+psycopg://USER@HOST/DB are supported")
    if parsed.database in (None, "", ":memory:"):
        raise LedgformerError("an in-memory SQLite database cannot be shared; give a file: sqlite:///FILE")
    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see the module docstring)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def _transient(err: DBAPIError) -> bool:
    """Lock contention or a serialisation conflict: worth retrying the whole transaction."""
    sqlstate = getattr(err.orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01"):  # serialization_failure, deadlock_detected
        return True
    text = str(err.orig).lower()
    return "database is locked" in text or "database is busy" in text


def run_write(engine: Engine, fn: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run ``fn(conn)`` in one write transaction, retried from scratch on lock contention.

    Either everything ``fn`` wrote is committed or nothing is: an exception (or the process being
    killed) before the COMMIT leaves the database as it was.
    """
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    return fn(conn)
        except DBAPIError as err:
            if attempt == attempts - 1 or not _transient(err):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


# ---- migrations ----------------------------------------------------------------------------

def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of ledgformer knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise AssertionError("no migrations found in ledgformer/db/migrations")
    return head


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (None: empty, never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision, once even when several processes start together."""
    head = head_revision()

    def _migrate(conn: Connection) -> str | None:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        before = MigrationContext.configure(conn).get_current_revision()
        _check_known(before, engine)
        if before != head:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return before

    return run_write(engine, _migrate), head


def _check_known(revision: str | None, engine: Engine) -> None:
    if revision is not None and revision not in known_revisions():
        raise LedgformerError(
            f"database {engine.url.render_as_string()} has schema revision {revision}, newer than this "
            f"ledgformer knows (up to {head_revision()}); upgrade ledgformer")


def ensure_schema(engine: Engine, migrate: bool) -> str:
    """Check (and with ``migrate``, bring) the schema to the newest revision; returns it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return head
    _check_known(current, engine)
    if not migrate:
        raise LedgformerError(
            f"database {engine.url.render_as_string()} is at schema revision {current or 'none'}, "
            f"this ledgformer needs {head}: run `ledgformer db migrate`")
    return upgrade(engine)[1]


__all__ = ["current_revision", "default_url", "ensure_schema", "head_revision", "make_engine",
           "resolve_url", "run_write", "upgrade"]
