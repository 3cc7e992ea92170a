"""Atomic writers for reports: a write interrupted half-way never leaves a broken file.

Every file goes to a temporary sibling first and is moved into place with
``os.replace`` (atomic on POSIX), so the previous version stays intact until the new
one is complete.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from nasbench.errors import UserError


def atomic_write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return path


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


def ensure_writable_dir(path: Path, what: str = "output directory") -> Path:
    """Create ``path`` if needed and prove it is writable, before any long work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nasbench-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"'{blocker}' is a file, not a directory" if blocker else (exc.strerror or str(exc))
        raise UserError(f"cannot write {what} '{path}': {reason}") from None
    return path


def ensure_writable_file(path: Path, what: str = "output file") -> Path:
    if path.exists() and path.is_dir():
        raise UserError(f"{what} '{path}' is a directory")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), what=f"directory of {what}")
    return path


def timestamped_dir(root: Path, prefix: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{prefix}-{stamp}"
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{prefix}-{stamp}-{n}"
    return candidate
