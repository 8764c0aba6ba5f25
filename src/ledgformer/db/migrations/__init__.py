"""Alembic migrations of the latency database (run by ``LatencyDB`` and ``ledgformer db migrate``)."""
