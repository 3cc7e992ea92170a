"""Several `nasbench search` processes on one study: PostgreSQL (a real server) and the
journal file. Exact totals, no duplicated trial, and a SIGKILLed worker's trial failed
after the heartbeat grace and re-run by the others.

The PostgreSQL tests need a server at 127.0.0.1:5432 (trust auth, database `test`) or
NASBENCH_TEST_PG=postgresql://...; they skip, saying why, where none is reachable.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from nasbench.storage import HEARTBEAT_ATTR, HeartbeatJournalStorage, grace_s

PG_URL = os.environ.get("NASBENCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

# Enough distinct configs (3 x 3^3 x 3 = 243) that workers rarely sample the same one.
SPACE = {
    "family": "mobilevit",
    "base": "mobilevit_xxs",
    "imgsz": 64,
    "presets": ["mobilevit_xxs"],
    "knobs": {
        "width": {"choices": [0.5, 0.75, 1.0], "scale": ["stage_channels"]},
        "transformer_blocks": {"int": [1, 3], "per_stage": 3},
        "ffn_ratio": {"choices": [1.5, 2.0, 3.0], "field": "ffn_dims", "times": "transformer_dims", "divisor": 16},
    },
}


def pg_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg not installed (pip install 'nasbench[postgres]')"
    try:
        psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=2).close()
    except Exception as exc:  # noqa: BLE001
        return f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip().splitlines()[0][:120]}"
    return None


@pytest.fixture(params=["postgresql", "journal"])
def storage_url(request, tmp_path: Path):
    if request.param == "journal":
        yield f"journal:{tmp_path / 'study.log'}"
        return
    reason = pg_reason()
    if reason:
        pytest.skip(reason)
    yield PG_URL


@pytest.fixture
def study_name(storage_url: str):
    name = f"nbtest-{uuid.uuid4().hex[:10]}"
    yield name
    if storage_url.startswith("postgresql"):  # leave the shared server as found
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                optuna.delete_study(study_name=name, storage=storage_url)
            except KeyError:
                pass


def load(storage_url: str, name: str) -> optuna.Study:
    if storage_url.startswith("journal:"):
        storage = HeartbeatJournalStorage(Path(storage_url[len("journal:"):]), heartbeat_s=1)
    else:
        storage = storage_url
    return optuna.load_study(study_name=name, storage=storage)


def start_worker(tmp_path: Path, storage_url: str, name: str, *args: str) -> subprocess.Popen:
    space = tmp_path / "space.yaml"
    if not space.exists():
        space.write_text(yaml.safe_dump(SPACE))
    # Workers share this machine's cores, so their timings are unstable by design: accepted here
    # (what these tests check is the study's bookkeeping, not latency).
    cmd = [sys.executable, "-m", "nasbench.cli", "search", "--space", str(space), "--budget", "10s", "--no-train",
           "--no-presets", "--device", "cpu", "--threads", "1", "--study", name, "--storage", storage_url,
           "--unstable-timing", "accept", "--out", str(tmp_path / "rep"), *args]
    log = open(tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def wait_all(procs: list[subprocess.Popen], tmp_path: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            logs = "\n".join(f.read_text()[-800:] for f in tmp_path.glob("worker-*.log"))
            pytest.fail(f"workers did not finish in {timeout_s} s:\n{logs}")
    bad = [p for p in procs if p.returncode != 0]
    assert not bad, "\n".join(f.read_text()[-1500:] for f in tmp_path.glob("worker-*.log"))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def report_trials(tmp_path: Path, storage_url: str, name: str) -> pd.DataFrame:
    out = tmp_path / "final-report"
    res = subprocess.run([sys.executable, "-m", "nasbench.cli", "report", name, "--storage", storage_url,
                          "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return pd.read_csv(out / "trials.csv")


def test_three_workers_make_exactly_the_requested_total(tmp_path: Path, storage_url: str, study_name: str) -> None:
    total = 9
    procs = [start_worker(tmp_path, storage_url, study_name, "--trials", "20", "--max-total", str(total))
             for _ in range(3)]
    wait_all(procs, tmp_path)

    study = load(storage_url, study_name)
    done = finished(study)
    assert len(done) == total
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))  # no trial recorded twice
    names = [t.user_attrs["name"] for t in done]
    assert len(names) == len(set(names))
    # every non-finished trial is a slot race loser that never ran
    for t in study.trials:
        if t not in done:
            assert t.state == TrialState.FAIL and t.user_attrs["reason"].startswith("surplus"), t
    workers = collections.Counter(t.user_attrs["worker"] for t in done)
    assert len(workers) >= 2, workers  # the work really was shared
    # each worker's summary counts its own trials, not the others' (it used to count all new ones)
    said = sorted(int(re.search(r"(\d+) trial\(s\) this run", log.read_text()).group(1))
                  for log in tmp_path.glob("worker-*.log"))
    own = collections.Counter(t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs)
    assert said == sorted([*own.values(), *[0] * (3 - len(own))]), (said, own)
    trials = report_trials(tmp_path, storage_url, study_name)
    assert sorted(trials.loc[trials["state"] == "complete", "trial"]) == sorted(t.number for t in done)


def wait_for_running_trial(storage_url: str, name: str, worker: str, timeout_s: float = 120) -> None:
    """Return as soon as ``worker`` has a trial that started moments ago (so it is mid-trial)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            study = load(storage_url, name)
        except (KeyError, FileNotFoundError):  # the study is not created yet
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker") == worker:
                return
        time.sleep(0.02)
    pytest.fail(f"worker {worker} never started a trial")


def test_sigkilled_worker_trial_fails_after_grace_and_is_rerun(tmp_path: Path, storage_url: str,
                                                               study_name: str) -> None:
    total, heartbeat_s = 8, 1
    args = ("--trials", "30", "--max-total", str(total), "--heartbeat", str(heartbeat_s), "--imgsz", "128")
    victim = start_worker(tmp_path, storage_url, study_name, *args)
    wait_for_running_trial(storage_url, study_name, f"{socket.gethostname()}:{victim.pid}")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    study = load(storage_url, study_name)
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.user_attrs.get("worker") == f"{socket.gethostname()}:{victim.pid}"]
    assert len(running) == 1, "the kill should land mid-trial"
    killed = running[0]

    others = [start_worker(tmp_path, storage_url, study_name, *args) for _ in range(2)]
    wait_all(others, tmp_path)

    study = load(storage_url, study_name)
    dead = study.trials[killed.number]
    assert dead.state == TrialState.FAIL
    # failed by a survivor only after the grace period (stamp-to-failure time >= grace)
    assert dead.datetime_complete.timestamp() >= killed_at + grace_s(heartbeat_s) - 1.5
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params  # the same sample, re-run
    done = finished(study)
    assert len(done) == total
    trials = report_trials(tmp_path, storage_url, study_name)
    assert sorted(trials.loc[trials["state"] == "complete", "trial"]) == sorted(t.number for t in done)
    assert trials.loc[trials["trial"] == killed.number, "state"].item() == "failed"


def test_a_retried_trial_gets_its_own_constraint_not_the_dead_ones() -> None:
    """Row 13: the dead trial's constraint (over budget) must not stick to its re-run."""
    from nasbench.storage import RetryStaleTrial

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    dead = study.ask({"width": optuna.distributions.CategoricalDistribution([0.5, 1.0])})
    dead.set_constraint("latency_over_budget_ms", 12.0)
    dead.set_user_attr("reason", "interrupted")
    study.tell(dead, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna marks the base class so
        retry = RetryStaleTrial(max_retry=2)
    retry(study, study.trials[0])
    rerun = study.ask()
    assert rerun.params == {"width": study.trials[0].params["width"]} and rerun.user_attrs == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when a constraint is set twice and keeps the first
        rerun.set_constraint("latency_over_budget_ms", -3.0)
    study.tell(rerun, 1.0)
    assert study.trials[1].constraints == {"latency_over_budget_ms": -3.0}
    assert study.trials[1].system_attrs["failed_trial"] == 0 and study.trials[1].system_attrs["retry_history"] == [0]


def test_a_study_name_postgresql_cannot_store_shows_the_drivers_reason(tmp_path: Path) -> None:
    """Row 12: the real cause, not Optuna's "An exception is raised during the commit"."""
    reason = pg_reason()
    if reason:
        pytest.skip(reason)
    proc = start_worker(tmp_path, PG_URL, "n" * 600, "--trials", "1")
    proc.wait(timeout=120)
    log = next(tmp_path.glob("worker-*.log")).read_text()
    lines = [ln for ln in log.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, log
    assert lines[0] == f"error: cannot open storage {PG_URL}: value too long for type character varying(512)"


def test_the_one_private_optuna_name_is_still_where_nasbench_imports_it(tmp_path: Path) -> None:
    """Optuna's optimize loop runs heartbeats only for storages that are a BaseHeartbeat
    (private module). If this fails after an Optuna upgrade, the journal storage silently
    lost dead-worker detection: move the import, then lift the bound in pyproject."""
    from optuna.storages import RDBStorage
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    assert issubclass(RDBStorage, BaseHeartbeat)
    storage = HeartbeatJournalStorage(tmp_path / "j.log", heartbeat_s=7)
    assert isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)
    study = optuna.create_study(storage=storage)
    study.ask()
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, 0)
    storage.record_heartbeat(trial_id)
    assert storage._get_stale_trial_ids(study_id) == []  # alive: stamped just now
    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time() - grace_s(7) - 1)
    assert storage._get_stale_trial_ids(study_id) == [trial_id]  # silent past the grace: stale


def test_a_worker_counts_the_waiting_preset_it_ran_though_numbered_before_its_start() -> None:
    """The CI race: worker A enqueued the presets, worker B started (so its "before" was past
    them) and then ran one of them; B's summary used to miss that trial."""
    from nasbench.nas.command import already_run, run_counts

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    timed = {"row": {"latency_ms": 1.0}}
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"worker": "b", **timed}))  # an earlier run
    study.enqueue_trial({})  # a preset A enqueued, still waiting when B starts
    run_before = already_run(study.get_trials(deepcopy=False))

    ran = study.ask()  # B runs the waiting preset
    assert ran.number == 1
    for k, v in {"worker": "b", **timed}.items():
        ran.set_user_attr(k, v)
    study.tell(ran, 2.0)
    study.add_trial(optuna.trial.create_trial(value=3.0, user_attrs={"worker": "a", **timed}))  # A's own
    study.add_trial(optuna.trial.create_trial(value=4.0, user_attrs={"worker": "b"}))  # B's, skipped unbuilt
    study.enqueue_trial({})  # still waiting at the end: nobody's yet

    trials = study.get_trials(deepcopy=False)
    assert run_counts(trials, run_before, "b", every_trial=False) == (1, 1, 1)
    assert run_counts(trials, run_before, "b", every_trial=True) == (2, 0, 1)
    assert run_counts(trials, run_before, "a", every_trial=False) == (1, 0, 2)
