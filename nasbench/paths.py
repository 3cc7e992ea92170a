"""Where nasbench keeps what belongs to the user and machine rather than to a study."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$NASBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/nasbench``, else ``~/.cache/nasbench``.

    Measured figures that belong to a machine (preset rows, the device's peak rates) are
    kept here, per user, and never in a study's storage.
    """
    explicit = os.environ.get("NASBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasbench"
