"""The one file writer: symlinks, special files, modes, temporaries, errors (data-loss row 1)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from nasbench.errors import UserError
from nasbench.report.files import STALE_TEMP_S, atomic_write_text


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
