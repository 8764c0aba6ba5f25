"""Where the benchmark data lives: one folder (the "data root") with the original public layout.

The data is never shipped with the package: a user fetches it (``ledgformer data fetch NAME``) or
copies it there. The root is resolved once per call so tests and CLI flags can point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

#: environment variable that overrides the default data root
DATA_ENV = "LEDGFORMER_DATA"


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """``explicit`` (the ``--data-root`` value), else ``$LEDGFORMER_DATA``, else the user cache.

    The folder is not created here: loaders report missing files against it, ``fetch`` creates it.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(user_cache_dir("ledgformer")) / "data"


__all__ = ["DATA_ENV", "resolve_data_root"]
