"""Many workers on one study: an exact trial total, distinct sampler seeds, quiet logs.

Several ``nasbench search`` processes (one or many machines) share one Optuna storage
(``nasbench.storage`` opens it, with heartbeats and the retry of a dead worker's trial).

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

import optuna
from optuna.trial import TrialState

LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


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


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def joining_seed(seed: int) -> int:
    """A sampler seed for a worker joining or resuming a study: stable for this process,
    different between concurrent workers (host and pid differ)."""
    digest = hashlib.sha1(f"{seed}:{worker_id()}".encode()).hexdigest()
    return int(digest[:8], 16) % 2**31


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
