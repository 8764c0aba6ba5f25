"""The latency-database tests of ``test_db.py`` against a real PostgreSQL server.

Needs ``LEDGFORMER_TEST_PG_URL`` (``export LEDGFORMER_TEST_PG_URL="$(scripts/ci_postgres.sh)"``
starts a throwaway server); skips with the reason when it is unset or the server is unreachable.
Every test starts from an empty ``public`` schema.
"""

from __future__ import annotations

import os

import pytest

from ledgformer.db.engine import resolve_url
from test_db import (  # the shared test bodies; they run here with the PostgreSQL db_url below
    db,  # noqa: F401 - fixture
    test_answer_measured_then_fitted_fallback,  # noqa: F401
    test_bad_measurements_are_rejected,  # noqa: F401
    test_cli_query_db_stats_export,  # noqa: F401
    test_concurrent_first_open_migrates_once,  # noqa: F401
    test_export_nnlqp,  # noqa: F401
    test_export_records,  # noqa: F401
    test_failed_measurement_rolls_back_the_graph_too,  # noqa: F401
    test_graph_stored_once_and_round_trips,  # noqa: F401
    test_kill_9_mid_write_leaves_database_intact,  # noqa: F401
    test_measurement_card_adds_its_platform,  # noqa: F401
    test_measurement_lookup_newest_wins,  # noqa: F401
    test_migrated_schema_matches_the_models,  # noqa: F401
    test_platform_same_card_is_noop_other_card_needs_replace,  # noqa: F401
    test_pluggable_predictor,  # noqa: F401
    test_prediction_upsert,  # noqa: F401
    test_real_measurement_is_stored_whole,  # noqa: F401
    test_two_writers_lose_nothing,  # noqa: F401
)


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("LEDGFORMER_TEST_PG_URL", "").strip()
    if not url:
        pytest.skip("LEDGFORMER_TEST_PG_URL is not set; start a server with "
                    'export LEDGFORMER_TEST_PG_URL="$(scripts/ci_postgres.sh)"')
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine = create_engine(resolve_url(url), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as err:
        pytest.skip(f"PostgreSQL at LEDGFORMER_TEST_PG_URL is unreachable: {str(err).splitlines()[0]}")
    finally:
        engine.dispose()
    return resolve_url(url)


@pytest.fixture
def db_url(pg_url: str) -> str:
    """An empty database for each test: drop and recreate the public schema."""
    from sqlalchemy import create_engine

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return pg_url
