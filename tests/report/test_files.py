"""The one file writer: symlinks, special files, modes, temporaries, errors (data-loss row 1)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from nasbench.errors import UserError
from nasbench.report.files import (
    STALE_TEMP_S,
    atomic_write_text,
    check_writable_dir,
    csv_text,
    ensure_writable_dir,
    write_together,
)


def test_a_symlink_is_followed_and_stays_a_link(tmp_path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_special_file_is_written_in_place_not_replaced(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write_text(fifo, "through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not a regular file


def test_dev_null_stays_a_device() -> None:
    atomic_write_text(os.devnull, "discarded")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        new = atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("x")
        os.chmod(kept, 0o640)
        atomic_write_text(kept, "y")
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640 and kept.read_text() == "y"
    finally:
        os.umask(old)


def test_stale_temporaries_are_removed_and_fresh_ones_kept(tmp_path) -> None:
    stale = tmp_path / ".index.html.abc.tmp"
    fresh = tmp_path / ".index.html.def.tmp"
    for p in (stale, fresh):
        p.write_text("half")
    past = time.time() - STALE_TEMP_S - 10
    os.utime(stale, (past, past))
    atomic_write_text(tmp_path / "index.html", "whole")
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.html.def.tmp", "index.html"]


def test_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        atomic_write_text(tmp_path / "dir", "x")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_text(blocked / "under_a_file.txt", "x")


def test_a_failed_write_of_several_files_changes_none_of_them(tmp_path, monkeypatch) -> None:
    """A disk that fills while a report is written leaves the old report whole (row 9)."""
    old = {tmp_path / "trials.csv": "old trials", tmp_path / "pareto.csv": "old pareto",
           tmp_path / "index.html": "old page"}
    for path, text in old.items():
        path.write_text(text)
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(UserError) as exc:
        write_together({path: "new" for path in old})
    assert str(exc.value) == f"cannot write '{tmp_path / 'pareto.csv'}': No space left on device; nothing was changed"
    assert {p: p.read_text() for p in old} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "pareto.csv", "trials.csv"]  # no temporary


def test_a_file_that_may_not_be_written_is_refused_before_any_moves(tmp_path, monkeypatch) -> None:
    first, locked = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("old a")
    locked.write_text("old b")
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(locked))  # as for an immutable file
    with pytest.raises(UserError, match="b.csv': the file is not writable"):
        write_together({first: "new a", locked: "new b"})
    assert first.read_text() == "old a" and locked.read_text() == "old b"


def test_a_folder_is_checked_without_being_created(tmp_path, monkeypatch) -> None:
    """check_writable_dir (train: nothing may be left behind by bad input) and
    ensure_writable_dir (reports: created at once) name the same blocker."""
    deep = tmp_path / "a" / "b"
    assert check_writable_dir(deep) == deep and not (tmp_path / "a").exists()
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    with pytest.raises(UserError) as exc:
        check_writable_dir(blocked / "train")
    assert str(exc.value) == f"cannot write output folder '{blocked / 'train'}': '{blocked}' is not a directory"
    with pytest.raises(UserError) as exc:
        ensure_writable_dir(blocked / "x" / "y", "report directory")
    assert str(exc.value) == f"cannot write report directory '{blocked / 'x' / 'y'}': '{blocked}' is a file, not a " \
                             "directory"
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a read-only folder (root may write all)
    with pytest.raises(UserError) as exc:
        check_writable_dir(deep)
    assert str(exc.value).endswith(f"'{tmp_path}' is not writable")
    assert ensure_writable_dir(deep) == deep and deep.is_dir()


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    import pandas as pd

    frame = pd.DataFrame({"name": ['=HYPERLINK("http://x")', "+1", "@SUM(A1)", "-cmd", "mobilevit_s", None],
                          "delta_pct": [-5.0, 1.0, 2.0, -0.5, 0.0, 3.0]})
    lines = csv_text(frame).splitlines()
    assert lines[1:] == ['"\'=HYPERLINK(""http://x"")",-5.0', "'+1,1.0", "'@SUM(A1),2.0", "'-cmd,-0.5",
                         "mobilevit_s,0.0", ",3.0"]


def test_first_line_of_an_error() -> None:
    from nasbench.errors import first_line

    assert first_line(ValueError("\n  bad shape \nmore detail")) == "bad shape"
    assert first_line(RuntimeError()) == "RuntimeError"  # no message: the type says what happened
    assert first_line(RuntimeError(""), "(no message)") == "(no message)"
    assert first_line(KeyError("")) == "''"  # KeyError's str is the repr of its key
