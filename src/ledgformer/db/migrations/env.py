"""Alembic environment: migrates the connection ``LatencyDB`` hands over (it holds the lock).

Run from the ``alembic`` command line (``sqlalchemy.url`` in the config) it opens its own
connection instead; the library never does that.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from ledgformer.db.schema import Base


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
