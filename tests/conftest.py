"""Shared fixtures. Tests that need the real benchmark data skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """``$LEDGFORMER_DATA`` if set, else ``../shared/data`` beside the checkout (as on CI)."""
    env = os.environ.get("LEDGFORMER_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("benchmark data not found: set LEDGFORMER_DATA or place it at ../shared/data")
    return root
