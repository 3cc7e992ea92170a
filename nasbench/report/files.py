"""The one file writer of nasbench (reports, CSV, export, train outputs).

Every file goes to a temporary sibling first and is moved into place with
``os.replace`` (atomic on POSIX), so the previous version stays intact until the new
one is complete; symlinks and special files are respected (see ``atomic_write_text``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nasbench.errors import UserError

DEFAULT_REPORTS = Path("reports")  # where every command writes its report unless --out says otherwise
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
    return write_together({path: text})[0]


def write_together(files: Mapping[Path, str]) -> list[Path]:
    """Write several files (as ``atomic_write_text``) so that a failure changes none of them.

    Every new text is first written and flushed to a temporary beside its file; only when
    all of them are on disk are they moved into place, in the order given. A full disk or
    a read-only file therefore leaves the old set whole (a report's CSVs never newer than
    its page, or the other way round), and no temporary behind.
    """
    staged: list[_Staged] = []
    try:
        for path, text in files.items():
            staged.append(_Staged(Path(path), Path(os.path.realpath(path)), text))
            _stage(staged[-1])
        for item in staged:
            _check_replaceable(item)
        for item in staged:
            _commit(item)
    except OSError as exc:
        failed = next((i.path for i in staged if i.failed), staged[-1].path)
        raise UserError(f"cannot write '{failed}': {exc.strerror or exc}"
                        + ("; nothing was changed" if len(files) > 1 and not any(i.done for i in staged) else "")
                        ) from None
    finally:
        for item in staged:
            if item.tmp is not None and not item.done:
                with contextlib.suppress(OSError):
                    os.unlink(item.tmp)
    return list(files)


@dataclass
class _Staged:
    path: Path  # as given
    target: Path  # symlinks resolved
    text: str
    tmp: str | None = None  # None: written in place at commit (a device, a FIFO)
    done: bool = False
    failed: bool = False


def _stage(item: _Staged) -> None:
    """Write the new text to a temporary beside the target (nothing for a device or FIFO)."""
    try:
        if item.target.is_dir():
            raise UserError(f"cannot write '{item.path}': it is a directory")
        if item.target.exists() and not item.target.is_file():
            return
        item.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(item.target)
        mode = stat.S_IMODE(item.target.stat().st_mode) if item.target.exists() else 0o666 & ~_umask()
        fd, item.tmp = tempfile.mkstemp(prefix=f".{item.target.name}.", suffix=".tmp", dir=item.target.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(item.text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data
        os.chmod(item.tmp, mode)
    except OSError:
        item.failed = True
        raise


def _check_replaceable(item: _Staged) -> None:
    """Refuse before anything moves: an existing file that may not be written (immutable,
    read-only for this user) would fail its rename after the others had landed."""
    if item.tmp is not None and item.target.exists() and not os.access(item.target, os.W_OK):
        item.failed = True
        raise PermissionError(1, "the file is not writable (read-only or immutable)", str(item.path))


def _commit(item: _Staged) -> None:
    try:
        if item.tmp is None:
            with open(item.target, "w", encoding="utf-8") as f:  # a device or FIFO: in place
                f.write(item.text)
        else:
            os.replace(item.tmp, item.target)
        item.done = True
    except OSError:
        item.failed = True
        raise


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...)
# in a config name); a leading apostrophe makes it text, as OWASP's CSV-injection advice says.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(frame) -> str:
    """``frame.to_csv(index=False)`` with text cells that a spreadsheet would run as a formula
    neutralised. Numbers (a negative latency delta) are left as they are."""
    def safe(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value

    text_columns = [c for c in frame.columns if frame[c].dtype.kind not in "biufcmM"]  # not numbers or times
    cleaned = frame.copy()
    for column in text_columns:
        cleaned[column] = cleaned[column].map(safe)
    return cleaned.to_csv(index=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(target: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for old in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def shown_path(path: Path | str) -> str:
    """A written file as printed: absolute, so it can be opened from any directory."""
    return str(Path(path).absolute())


def ensure_writable_dir(path: Path, what: str = "output directory") -> Path:
    """Create ``path`` if needed and prove it is writable, before any long work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nasbench-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        nearest = _nearest_existing(path)
        reason = f"'{nearest}' is a file, not a directory" if not nearest.is_dir() else (exc.strerror or str(exc))
        raise UserError(f"cannot write {what} '{path}': {reason}") from None
    return path


def check_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Refuse ``path`` unless it, or its nearest existing parent, is a writable directory.

    Unlike ``ensure_writable_dir`` it creates nothing: for a command whose inputs are only
    checked after this (``train`` decodes its data later), so bad input leaves no empty folder.
    """
    nearest = _nearest_existing(path)
    if not nearest.is_dir():
        problem = "is not a directory"
    elif not os.access(nearest, os.W_OK | os.X_OK):
        problem = "is not writable"
    else:
        return path
    raise UserError(f"cannot write {what} '{path}': '{nearest}' {problem}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the one that blocks or allows creating it)."""
    return next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor or "."))


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
