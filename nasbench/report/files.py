"""The one file writer of nasbench (reports, CSV, export, train outputs).

Every file goes to a temporary sibling first and is moved into place with
``os.replace`` (atomic on POSIX), so the previous version stays intact until the new
one is complete; symlinks and special files are respected (see ``atomic_write_text``).
"""

from __future__ import annotations

import glob
import os
import stat
import tempfile
import time
from datetime import datetime
from pathlib import Path

from nasbench.errors import UserError

STALE_TEMP_S = 600  # temporaries older than this were left by a killed writer: removed on the next write


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half.

    - a symlink is followed: its target is replaced, the link stays a link;
    - a path that exists and is not a regular file (``/dev/null``, a FIFO) is written in
      place, never replaced by a regular file;
    - a new file gets the umask's mode, a replaced file keeps its mode;
    - temporaries of this file left by a killed writer are removed;
    - any OSError becomes one UserError line naming the file.
    Returns ``path`` as given.
    """
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            if target.is_dir():
                raise UserError(f"cannot write '{path}': it is a directory")
            with open(target, "w", encoding="utf-8") as f:  # a device or FIFO: in place
                f.write(text)
            return path
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())  # the rename must not land before the data
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            with _suppress():
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror or exc}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(target: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for old in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with _suppress():
            if old.stat().st_mtime < cutoff:
                old.unlink()


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
