"""nasbench studies open in optuna-dashboard: the real server, read back over HTTP."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from nasbench.cli import main
from tests.helpers import TINY_SPACE


def dashboard_command() -> str | None:
    beside = Path(sys.executable).parent / "optuna-dashboard"
    return str(beside) if beside.is_file() else shutil.which("optuna-dashboard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_a_study_nasbench_wrote_is_served_by_optuna_dashboard(tmp_path: Path) -> None:
    command = dashboard_command()
    if command is None:
        pytest.skip("optuna-dashboard not installed (pip install -e '.[test]' installs it)")
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    storage = f"sqlite:///{tmp_path}/s.db"
    res = CliRunner().invoke(main, ["search", "--space", str(space), "--budget", "1s", "--no-train", "--trials", "3",
                                    "--study", "dash", "--no-presets", "--device", "cpu", "--storage", storage,
                                    "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output

    port = free_port()
    server = subprocess.Popen([command, storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listed = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        study = next(s for s in listed if s["study_name"] == "dash")
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    trials = detail["trials"]
    assert all(t["state"] == "Complete" for t in trials)
    # 3 timed; a tiny space's sampler may also propose repeats (recorded with duplicate_of, not counted)
    assert sum("duplicate_of" not in {a["key"] for a in t["user_attrs"]} for t in trials) == 3
    for t in trials:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert {"config", "row", "feasible", "name", "constraint"} <= set(attrs)
        assert attrs["name"] == f"t{t['number']:04d}"
