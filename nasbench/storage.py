"""Optuna storages, in one place: the URL forms accepted, opening one for reading (a report,
an export) or for a search (heartbeats, the table-creation race of workers started
together, re-queueing a dead worker's trial), a torn journal tail repaired, and every way
that fails as one line with the passwords masked.

- **Heartbeats.** While a trial runs, its worker stamps it every ``heartbeat_s`` seconds.
  A RUNNING trial silent for ``GRACE_HEARTBEATS`` x that (its worker was SIGKILLed, the
  machine died) is failed by whichever worker looks next, and a copy with the same
  parameters is queued, so the sample is retried and nothing finished is lost. RDBStorage
  has this built in; Optuna's journal storage does not, so ``HeartbeatJournalStorage``
  adds it with the same contract (stamps are trial system attributes).
- ``mask_url`` is hand-written rather than SQLAlchemy's URL: that one leaks the part of a
  password after an unencoded ``@`` and reorders query parameters.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
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

from nasbench.errors import UserError, first_line

DEFAULT_STORAGE = "sqlite:///studies/nasbench.db"
DEFAULT_HEARTBEAT_S = 30
GRACE_HEARTBEATS = 4  # a trial silent this many heartbeats is considered dead
MAX_RETRIES = 2  # a sample whose worker died is re-run at most this often
CONSTRAINT_ATTR_PREFIX = "constraints"  # Optuna's system attrs of Trial.set_constraint
HEARTBEAT_ATTR = "nasbench_heartbeat_unix_s"
# What a worker sees when another one created Optuna's tables a moment before it.
TABLE_RACE_SIGNS = ("already exists", "alembic_version", "duplicate key")


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


def storage_scheme(url: str) -> str:
    """"journal", or the URL's database scheme without its driver ("sqlite", "postgresql" ...; "" if none)."""
    if url.startswith("journal:"):
        return "journal"
    return (url.split("://", 1)[0] if "://" in url else "").split("+")[0]


def storage_url_problem(url: str) -> str | None:
    """Why ``url`` is not a storage URL nasbench accepts, or None."""
    scheme = storage_scheme(url)
    if scheme == "journal":
        return None if url[len("journal:"):] else "journal: needs a file path"
    if scheme not in ("sqlite", "postgresql", "mysql"):
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


def _password(url: str) -> tuple[int, int] | None:
    """Start and end of the password in ``scheme://user:password@host/...``, if any.

    The user info ends at the LAST '@' (an unencoded '@' in a password must not leak);
    when in doubt more is masked, never less.
    """
    start = url.find("//")
    if start < 0:
        return None
    at = url.rfind("@", start + 2)
    colon = url.find(":", start + 2, at) if at > 0 else -1
    if at < 0 or colon < 0 or "/" in url[start + 2:colon]:
        return None
    return colon + 1, at


# Secrets libpq and SQLAlchemy drivers also take as query parameters (?password=...).
_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd|sslpassword|secret|token)=)([^&#]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A storage URL safe to print: the password (``user:secret@`` or ``?password=secret``) becomes ``***``."""
    span = _password(url)
    masked = url if span is None else url[:span[0]] + "***" + url[span[1]:]
    return _QUERY_SECRET.sub(lambda m: m.group(1) + "***", masked)


def _scrub(text: str, url: str) -> str:
    """Remove the URL's passwords from an error message (drivers may echo them)."""
    span = _password(url)
    text = text.replace(url, mask_url(url))
    secrets = [url[span[0]:span[1]]] if span is not None and span[1] > span[0] else []
    secrets += [m.group(2) for m in _QUERY_SECRET.finditer(url) if m.group(2)]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def repair_journal_tail(path: Path) -> str | None:
    """Cut a journal back to its last complete record when a write was cut short (a full
    disk), keeping the whole original beside it; returns what was done, or None when the
    file was whole. Runs under Optuna's own journal lock, so no worker is appending.

    Every record Optuna appends is one JSON line written whole under that lock; a last line
    without its newline, or one that is not JSON, can only be a torn write.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = _complete_prefix(data)
        if keep == len(data):
            return None
        backup = path.with_name(f"{path.name}.torn-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
        try:
            backup.write_bytes(data)
            with open(path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise UserError(f"journal {path} ends in a torn record ({len(data) - keep} bytes) and cannot be repaired "
                            f"here ({exc.strerror or exc}); free disk space and re-run, or copy it and truncate it "
                            f"to its first {keep} bytes") from None
        return (f"journal {path}: removed a torn last record of {len(data) - keep} bytes (a write cut short, e.g. "
                f"by a full disk); every complete trial is kept; the original is saved as {backup}")
    finally:
        lock.release()


def note_repair(message: str | None) -> None:
    """Say on stderr, in one line, that a storage was repaired."""
    if message:
        print(f"note: {message}", file=sys.stderr, flush=True)


def _complete_prefix(data: bytes) -> int:
    """Length of the leading run of whole, valid JSON lines of ``data``."""
    end = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
    while end > 0:
        start = data.rfind(b"\n", 0, end - 1) + 1
        try:
            json.loads(data[start:end])
            return end
        except ValueError:
            end = start  # the last line is not a record either: drop it too
    return 0


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``, never creating an empty database by mistake."""
    shown = mask_url(url)
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        if not path.is_file():
            raise UserError(f"no journal storage file at {path} (check --storage)")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        note_repair(repair_journal_tail(path))

        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as exc:  # noqa: BLE001 - any backend failure is a bad --storage
            raise UserError(f"cannot open storage {shown}: {storage_error_line(exc, url)}") from None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:") and not path.is_file():
            raise UserError(f"no study database at {path}: run `nasbench search` first or pass --storage URL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - driver errors vary (sqlalchemy, psycopg2, ...)
        raise UserError(f"cannot open storage {shown}: {storage_error_line(exc, url)}") from None


def storage_error_line(exc: BaseException, url: str) -> str:
    """A storage failure in one line: the real cause (Optuna re-raises a driver's error as "An
    exception is raised during the commit..." from it, which hides what went wrong), with the
    URL's passwords removed."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return _scrub(first_line(exc), url)[:300]


def open_study(name: str, storage: str | optuna.storages.BaseStorage) -> optuna.Study:
    """Load study ``name``; an unknown name lists the closest names in that storage."""
    import difflib

    store = open_storage(storage) if isinstance(storage, str) else storage
    shown = mask_url(storage) if isinstance(storage, str) else type(storage).__name__
    try:
        names = [s.study_name for s in store.get_all_studies()]
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read studies from {shown}: "
                        f"{storage_error_line(exc, storage if isinstance(storage, str) else '')}") from None
    if name not in names:
        if not names:
            raise UserError(f"no study '{name}': storage {shown} has no studies")
        contains = [n for n in names if name.lower() in n.lower() or n.lower() in name.lower()]
        close = list(dict.fromkeys(contains + difflib.get_close_matches(name, names, n=3, cutoff=0.3)))[:3]
        hint = f"did you mean {', '.join(close)}?" if close else f"studies there: {', '.join(sorted(names)[:10])}"
        raise UserError(f"no study '{name}' in {shown}; {hint}")
    return optuna.load_study(study_name=name, storage=store)
