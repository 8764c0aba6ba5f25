"""Where expensive results (parsed graphs, embeddings, fetched data) live on disk.

``$LEDGFORMER_CACHE`` if set (tests point it at a temporary folder), else the user cache dir.
Callers key entries by content hash and version, so a stale entry is never read back.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir(*parts: str) -> Path:
    """The cache folder for ``parts`` (created if missing)."""
    base = os.environ.get("LEDGFORMER_CACHE") or user_cache_dir("ledgformer")
    path = Path(base).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
