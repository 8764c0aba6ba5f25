"""Alembic revisions, applied in order; each file is one schema version."""
