"""The latency database: measured and predicted latencies of graphs on platforms.

SQLite file by default (``$LEDGFORMER_DB`` or ``<user data dir>/ledgformer/latency.db``),
PostgreSQL by URL for a shared team database. See ``store.LatencyDB``.
"""

from ledgformer.db.answer import Answer, Predictor, answer, fallback_predictor
from ledgformer.db.engine import default_url, resolve_url
from ledgformer.db.store import LatencyDB, MeasurementInfo, PlatformInfo, median_iqr

__all__ = ["Answer", "LatencyDB", "MeasurementInfo", "PlatformInfo", "Predictor", "answer", "default_url",
           "fallback_predictor", "median_iqr", "resolve_url"]
