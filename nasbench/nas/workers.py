"""Many workers on one study: heartbeats, stale-trial recovery and an exact trial total.

Several ``nasbench search`` processes (one or many machines) share one Optuna storage:
PostgreSQL/MySQL/SQLite through ``RDBStorage``, or a journal file (``journal:PATH``) for
processes on one machine without a database server.

- **Heartbeats.** While a trial runs, its worker stamps it every ``heartbeat_s`` seconds.
  A RUNNING trial silent for ``GRACE_HEARTBEATS`` x that (its worker was SIGKILLed, the
  machine died) is failed by whichever worker looks next, and a copy with the same
  parameters is queued, so the sample is retried and nothing finished is lost. RDBStorage
  has this built in; Optuna's journal storage does not, so ``HeartbeatJournalStorage``
  adds it with the same contract (stamps are trial system attributes).
- **Exact totals.** ``--max-total N`` means exactly N finished (COMPLETE or PRUNED)
  trials across all workers. Each new trial first claims a slot: if the other live
  trials (finished, running, queued) already fill N, it ends FAIL with reason "surplus"
  and never runs; a worker that finds every slot taken by running trials waits (a
  running trial may still die and need a retry) instead of leaving early.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

# The one private name nasbench uses: the interface Optuna's optimize loop checks for
# heartbeats (RDBStorage implements it; the journal storage does not). pyproject bounds
# optuna below 6, and tests/search/test_workers.py fails loudly if the name moves.
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from nasbench.errors import UserError
from nasbench.report.study import mask_url, note_repair, repair_journal_tail, storage_error_line

DEFAULT_HEARTBEAT_S = 30
GRACE_HEARTBEATS = 4  # a trial silent this many heartbeats is considered dead
MAX_RETRIES = 2  # a sample whose worker died is re-run at most this often
CONSTRAINT_ATTR_PREFIX = "constraints"  # Optuna's system attrs of Trial.set_constraint
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
HEARTBEAT_ATTR = "nasbench_heartbeat_unix_s"
# What a worker sees when another one created Optuna's tables a moment before it.
TABLE_RACE_SIGNS = ("already exists", "alembic_version", "duplicate key")


class SurplusTrial(Exception):
    """This trial would exceed --max-total: it ends FAIL before doing any work."""


class _NoTraceback(logging.Filter):
    """Optuna logs a failed trial with its whole traceback (87 lines for a builder's ValueError);
    the reason is already one line in the message and on the trial (user attr ``reason``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def quiet_optuna() -> None:
    """Optuna's warnings and errors only, each on one line (idempotent)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's re-run of a dead worker's trial, without what the dead trial measured.

    Optuna's callback copies the dead trial's system attrs, its sampler constraints among
    them, and ``Trial.set_constraint`` refuses to overwrite a constraint already set: the
    re-run kept the dead trial's constraint instead of its own measurement (with a
    UserWarning). Its user attrs (row, reason) are not copied either: the re-run writes its own.
    """

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if self._max_retry is not None and self._max_retry < len(history):
            return
        kept = {k: v for k, v in trial.system_attrs.items() if not k.startswith(CONSTRAINT_ATTR_PREFIX)}
        study.add_trial(optuna.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            system_attrs={**kept, "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                          "retry_history": history}))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def joining_seed(seed: int) -> int:
    """A sampler seed for a worker joining or resuming a study: stable for this process,
    different between concurrent workers (host and pid differ)."""
    digest = hashlib.sha1(f"{seed}:{worker_id()}".encode()).hexdigest()
    return int(digest[:8], 16) % 2**31


def grace_s(heartbeat_s: int) -> int:
    return GRACE_HEARTBEATS * heartbeat_s


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal-file storage plus the heartbeat contract RDBStorage implements."""

    def __init__(self, path: Path, heartbeat_s: int,
                 stale_callback: Callable[[optuna.Study, Any], None] | None = None) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self.heartbeat_s = heartbeat_s
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        oldest_alive = time.time() - grace_s(self.heartbeat_s)
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.system_attrs.get(HEARTBEAT_ATTR)
            if last is not None and last < oldest_alive:
                stale.append(self.get_trial_id_from_study_id_trial_number(study_id, t.number))
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_s

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_callback


STORAGE_FORMS = "sqlite:///path.db, postgresql://user:pass@host/db (or mysql://...), journal:PATH"


def storage_url_problem(url: str) -> str | None:
    """Why ``url`` is not a storage URL nasbench accepts, or None."""
    if url.startswith("journal:"):
        return None if url[len("journal:"):] else "journal: needs a file path"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        return f"accepted forms: {STORAGE_FORMS}"
    return None


def make_storage(url: str, heartbeat_s: int = DEFAULT_HEARTBEAT_S) -> optuna.storages.BaseStorage:
    """The storage behind ``--storage``, with heartbeats and retry of dead workers' trials.

    Workers started together on a fresh database race to create Optuna's tables; the
    loser sees "already exists" (or a duplicate schema-version row) and opens it again.
    """
    for attempt in range(3):
        try:
            return _open_storage(url, heartbeat_s)
        except Exception as exc:  # noqa: BLE001 - the driver's error class varies
            if not any(sign in str(exc) for sign in TABLE_RACE_SIGNS) or attempt == 2:
                raise
            time.sleep(random.uniform(0.2, 1.0))
    raise AssertionError("unreachable")


def _open_storage(url: str, heartbeat_s: int) -> optuna.storages.BaseStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryStaleTrial(max_retry=MAX_RETRIES)
        if url.startswith("journal:"):
            path = Path(url[len("journal:"):])
            note_repair(repair_journal_tail(path))  # before anything appends to a torn tail
            return HeartbeatJournalStorage(path, heartbeat_s, retry)
        # pool_pre_ping: a pooled connection the server dropped (restart, idle timeout,
        # pg_terminate_backend) is replaced on checkout instead of failing the next trial.
        return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=grace_s(heartbeat_s),
                                          heartbeat_stale_trial_callback=retry, engine_kwargs={"pool_pre_ping": True})


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises when its database goes away mid-search."""
    import sqlalchemy.exc

    return (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)


@contextmanager
def storage_loss_as_error(url: str, heartbeat_s: int):
    """A database lost mid-search ends the command with one line saying what is kept and how
    to go on, instead of Optuna's and SQLAlchemy's tracebacks."""
    try:
        yield
    except storage_errors() as exc:
        why = storage_error_line(exc, url)
        raise UserError(f"lost the storage {mask_url(url)} during the search: {why}; the trials "
                        "finished before are kept: re-run the same command to resume (a trial cut off mid-way is "
                        f"marked failed by the heartbeat after {grace_s(heartbeat_s)} s)") from None


def state_counts(study: optuna.Study) -> Counter:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def finished(counts: Counter) -> int:
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


class CappedObjective:
    """Wraps the trial objective: claim one of ``max_total`` slots before any work."""

    def __init__(self, objective: Callable[[optuna.Trial], float], max_total: int) -> None:
        self.objective, self.max_total = objective, max_total
        self.last_was_surplus = False

    def __call__(self, trial: optuna.Trial) -> float:
        # Counting every other live trial (not only earlier ones) can make two racing
        # trials both step back; the worker loop retries after a random pause, so the
        # total is never exceeded and is still reached.
        others = sum(1 for t in trial.study.get_trials(deepcopy=False, states=LIVE_STATES) if t.number != trial.number)
        self.last_was_surplus = others >= self.max_total
        if self.last_was_surplus:
            trial.set_user_attr("reason", f"surplus: {others} other trials fill --max-total {self.max_total} (not run)")
            raise SurplusTrial()
        return self.objective(trial)


def fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def optimize_until_total(study: optuna.Study, objective: CappedObjective, *, max_trials: int,
                         deadline: float | None, callbacks: list, catch: tuple, poll_s: float,
                         on_wait: Callable[[str], None] = lambda s: None) -> None:
    """Run trials until the study holds ``objective.max_total`` finished trials (all
    workers together), this worker has run ``max_trials``, or ``deadline`` (monotonic)."""
    ran = 0
    while ran < max_trials and (deadline is None or time.monotonic() < deadline):
        fail_stale(study)
        counts = state_counts(study)
        if finished(counts) >= objective.max_total:
            return
        if finished(counts) + counts[TrialState.RUNNING] >= objective.max_total:
            on_wait(f"waiting: {counts[TrialState.RUNNING]} running trial(s) of other workers fill the total "
                    "(one may still die and need a retry)")
            time.sleep(poll_s)
            continue
        study.optimize(objective, n_trials=1, callbacks=callbacks, catch=(*catch, SurplusTrial), gc_after_trial=False)
        if objective.last_was_surplus:
            time.sleep(random.uniform(0.0, poll_s))  # two workers raced for the last slot
        else:
            ran += 1
