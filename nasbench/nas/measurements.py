"""Measured rows of start trials (presets and their aimed versions), kept across studies.

A preset measured once on a machine at given settings is not timed again by the next
study with the same settings: its row is read from a small JSON file in the user's cache
directory (``$NASBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/nasbench``, else
``~/.cache/nasbench``). The key holds everything that changes a figure: the config, input
size, device name and type, dtype, threads, timing plan, target, torch and nasbench
versions. Latency belongs to the machine, so the cache is per user and machine, not in
the study storage. Concurrent workers may overwrite each other's new entries (the file is
replaced atomically, never half-written); a lost entry is measured again, nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nasbench.errors import UserError
from nasbench.paths import cache_dir
from nasbench.report.files import atomic_write_text

CACHE_FILE = "measurements.json"
FORMAT = 1
MAX_ENTRIES = 2000  # oldest dropped beyond this


def measurement_key(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable or damaged: start afresh, it is only a cache
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), dict):
        return {}
    return data["rows"]


def lookup(key: str) -> dict[str, Any] | None:
    row = _load(cache_dir() / CACHE_FILE).get(key)
    return dict(row) if isinstance(row, dict) else None


def store(key: str, row: dict[str, Any]) -> None:
    """Add one row; a cache that cannot be written is skipped silently (the study has the row)."""
    path = cache_dir() / CACHE_FILE
    rows = _load(path)
    rows.pop(key, None)
    rows[key] = row
    while len(rows) > MAX_ENTRIES:
        rows.pop(next(iter(rows)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"format": FORMAT, "rows": rows}, separators=(",", ":")))
    except (OSError, UserError):  # atomic_write_text reports a failed write as a UserError
        pass
