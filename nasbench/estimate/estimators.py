"""The registered estimators, their validity on the reference table, and the default.

Three sorts, all reading the model alone (``signals.py``):
- ``SignalEstimator``: one signal as the score (MACs, params, a zero-cost score).
- ``RankAverage``: the mean percentile of several signals among the published presets
  (parameter-free, so its figures need no held-out split).
- ``FittedEstimator``: a ridge fit of log(100 - top-1) on a few signals over the
  reference table, answering in top-1 points. Error falls as a power of model size,
  so the log of the error is fitted, not top-1 itself (it saturates toward 100).
  Its figures are always leave-one-family-out, and ``excluding(family)`` is what
  ``compare``/``search`` use for a model of a family in the table, so an estimate shown
  beside a published number was made without that family.

The default is the fitted candidate with the lowest leave-one-family-out error among
``FIT_CANDIDATES``, a short list declared before looking at its scores;
``select_default`` recomputes that choice and a test holds it equal to
``DEFAULT_ESTIMATOR``. The choice among the candidates is itself scored without
leakage by ``nested_lofo`` (the benchmark reports both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from torch import nn

from nasbench.errors import UserError
from nasbench.estimate.base import Estimate, Estimator
from nasbench.estimate.fitted import DEFAULT_RIDGE, LinearFit, fit_linear
from nasbench.estimate.reference import ReferenceRow, reference_rows
from nasbench.estimate.signals import COST_SIGNALS, measure_signals
from nasbench.estimate.validity import Validity, leave_one_family_out, mean_abs_error, validity

TOP1_LABEL = "estimated ImageNet top-1 %"


def error_target(top1: float) -> float:
    return math.log(100.0 - top1)


CHANCE_TOP1 = 0.1  # % of 1,000 classes: no estimate goes below chance


def _from_error_target(value: float) -> float:
    return max(CHANCE_TOP1, 100.0 - math.exp(value))


def _timed(model: nn.Module, imgsz: int, names: Sequence[str]) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    values, _seconds = measure_signals(model, imgsz, names)
    return values, time.perf_counter() - start


@dataclass(frozen=True)
class SignalEstimator:
    name: str
    signal: str
    description: str
    calibrated: bool = False

    @property
    def kind(self) -> str:
        return "cost" if self.signal in COST_SIGNALS else "zero-cost"

    @property
    def label(self) -> str:
        return f"{self.signal} (score, higher = better)"

    @property
    def signals(self) -> tuple[str, ...]:
        return (self.signal,)

    def value_of(self, values: dict[str, float]) -> float:
        return values[self.signal]

    def estimate(self, model: nn.Module, imgsz: int) -> Estimate:
        values, seconds = _timed(model, imgsz, self.signals)
        return Estimate(self.name, self.kind, self.value_of(values), False, seconds, values)

    def reference_values(self, rows: Sequence[ReferenceRow]) -> list[float]:
        return [self.value_of(r.signals) for r in rows]


def _percentile(value: float, population: Sequence[float]) -> float:
    """Share of the population below ``value`` (ties count half), in [0, 1]."""
    below = sum(1 for p in population if p < value) + 0.5 * sum(1 for p in population if p == value)
    return below / len(population)


@dataclass(frozen=True)
class RankAverage:
    name: str
    signals: tuple[str, ...]
    description: str
    kind: str = "combined"
    calibrated: bool = False

    @property
    def label(self) -> str:
        return f"mean percentile of {' and '.join(self.signals)} among the published presets"

    def value_of(self, values: dict[str, float], rows: Sequence[ReferenceRow] | None = None) -> float:
        """Mean percentile of the signals among ``rows`` (default: the reference table)."""
        rows = reference_rows() if rows is None else rows
        return sum(_percentile(values[s], [r.signals[s] for r in rows]) for s in self.signals) / len(self.signals)

    def estimate(self, model: nn.Module, imgsz: int) -> Estimate:
        values, seconds = _timed(model, imgsz, self.signals)
        return Estimate(self.name, self.kind, self.value_of(values), False, seconds, values)

    def reference_values(self, rows: Sequence[ReferenceRow]) -> list[float]:
        return [self.value_of(r.signals, rows) for r in rows]


@lru_cache(maxsize=64)
def _fit(features: tuple[str, ...], ridge: float, exclude_family: str | None) -> LinearFit:
    rows = [r for r in reference_rows() if r.family != exclude_family]
    return fit_linear([r.signals for r in rows], [error_target(r.top1) for r in rows], features, ridge)


@dataclass(frozen=True)
class FittedEstimator:
    name: str
    signals: tuple[str, ...]
    description: str
    ridge: float = DEFAULT_RIDGE
    exclude_family: str | None = None  # fit without this family's presets
    kind: str = "fitted"
    calibrated: bool = True
    label: str = TOP1_LABEL

    def fit(self) -> LinearFit:
        return _fit(self.signals, self.ridge, self.exclude_family)

    def excluding(self, family: str | None) -> FittedEstimator:
        """This estimator fitted without ``family`` (itself when the family has no published preset)."""
        in_table = family is not None and any(r.family == family for r in reference_rows())
        return replace(self, exclude_family=family if in_table else None)

    def value_of(self, values: dict[str, float]) -> float:
        """Estimated top-1 % from the signals, fitted on the reference table (less ``exclude_family``)."""
        return _from_error_target(self.fit().predict(values))

    def estimate(self, model: nn.Module, imgsz: int) -> Estimate:
        values, seconds = _timed(model, imgsz, self.signals)
        details = dict(values, outside_reference=float(self.outside_reference(values)))
        return Estimate(self.name, self.kind, self.value_of(values), True, seconds, details)

    def outside_reference(self, values: dict[str, float]) -> int:
        """How many of the signals lie outside the range of the presets fitted on (extrapolation)."""
        rows = [r for r in reference_rows() if r.family != self.exclude_family]
        return sum(1 for s in self.signals
                   if not min(r.signals[s] for r in rows) <= values[s] <= max(r.signals[s] for r in rows))

    def reference_values(self, rows: Sequence[ReferenceRow]) -> list[float]:
        """Leave-one-family-out predictions of ``rows``."""
        def fit(train_rows, train_truth):
            line = fit_linear(train_rows, [error_target(t) for t in train_truth], self.signals, self.ridge)
            return lambda values: _from_error_target(line.predict(values))
        return leave_one_family_out(fit, [r.signals for r in rows], [r.top1 for r in rows], [r.family for r in rows])


def _fitted(name: str, signals: tuple[str, ...], why: str) -> FittedEstimator:
    return FittedEstimator(name, signals, why)


# Declared before their scores were compared; the default is chosen among these only.
FIT_CANDIDATES = (
    _fitted("fit_log_macs", ("log_macs",), "log-MACs alone, calibrated: the cost baseline in top-1 points"),
    _fitted("fit_log_macs_zico", ("log_macs", "zico"), "log-MACs + ZiCo, the accuracy issue's first probe"),
    _fitted("fit_cost", ("log_positional_params", "log_activations"),
            "capacity (weights reused across positions) + feature-map volume; no forward-backward"),
    _fitted("fit_cost_zico", ("log_positional_params", "log_activations", "zico"), "fit_cost + ZiCo"),
    _fitted("fit_cost_naswot", ("log_positional_params", "log_activations", "naswot"), "fit_cost + NASWOT"),
    _fitted("fit_cost_grad_norm", ("log_positional_params", "log_activations", "grad_norm"),
            "fit_cost + log grad-norm"),
)

_SIGNAL_ESTIMATORS = (
    SignalEstimator("macs", "macs", "multiply-accumulates per image"),
    SignalEstimator("params", "params", "parameter count (deploy form)"),
    SignalEstimator("zico", "zico", "ZiCo at initialisation (ICLR 2023)"),
    SignalEstimator("naswot", "naswot", "NASWOT activation-pattern log-determinant, sign-based for smooth activations"),
    SignalEstimator("synflow", "synflow", "SynFlow (log), data-free"),
    SignalEstimator("grad_norm", "grad_norm", "gradient norm at initialisation (log)"),
    SignalEstimator("jacob_cov", "jacob_cov", "Jacobian covariance"),
    SignalEstimator("meco", "meco", "MeCo minimum eigenvalue of feature correlation"),
)

ESTIMATORS: dict[str, Estimator] = {
    e.name: e for e in (*_SIGNAL_ESTIMATORS,
                        RankAverage("rank_macs_zico", ("macs", "zico"), "mean percentile of MACs and ZiCo"),
                        *FIT_CANDIDATES)
}
DEFAULT_ESTIMATOR = "fit_cost_grad_norm"


def get_estimator(name: str) -> Estimator:
    """A registered estimator by name (``default`` = DEFAULT_ESTIMATOR), or a UserError naming the choices."""
    key = DEFAULT_ESTIMATOR if name == "default" else name
    if key not in ESTIMATORS:
        from nasbench.zoo import closest_names

        hint = closest_names(name, list(ESTIMATORS))
        raise UserError(f"unknown estimator '{name}'" + (f"; did you mean {', '.join(hint)}?" if hint else "")
                        + f" (estimators: default, {', '.join(ESTIMATORS)})")
    return ESTIMATORS[key]


def for_family(estimator: Estimator, family: str | None) -> Estimator:
    """The estimator to use for a model of ``family``: fitted ones leave that family out."""
    excluding = getattr(estimator, "excluding", None)
    return excluding(family) if callable(excluding) else estimator


def estimator_validity(estimator: Estimator, rows: Sequence[ReferenceRow] | None = None) -> Validity:
    """The estimator's figures over the reference table (fitted: leave-one-family-out)."""
    rows = list(reference_rows() if rows is None else rows)
    est = estimator.reference_values(rows)
    return validity(est, [r.top1 for r in rows], [r.family for r in rows], [r.signals["macs"] for r in rows],
                    calibrated=estimator.calibrated)


def select_default(rows: Sequence[ReferenceRow] | None = None) -> str:
    """The fit candidate with the lowest leave-one-family-out mean absolute error."""
    rows = list(reference_rows() if rows is None else rows)
    return min(FIT_CANDIDATES, key=lambda c: estimator_validity(c, rows).mae).name


def nested_lofo(rows: Sequence[ReferenceRow] | None = None) -> tuple[Validity, dict[str, str]]:
    """The selection procedure itself, held out: each family is predicted by the candidate
    chosen (and fitted) on the other families only. Returns its figures and each family's pick."""
    rows = list(reference_rows() if rows is None else rows)
    predictions: dict[str, float] = {}
    picks: dict[str, str] = {}
    for fam in sorted({r.family for r in rows}):
        inner = [r for r in rows if r.family != fam]
        chosen = next(c for c in FIT_CANDIDATES if c.name == select_default(inner))
        picks[fam] = chosen.name
        line = fit_linear([r.signals for r in inner], [error_target(r.top1) for r in inner], chosen.signals,
                          chosen.ridge)
        for r in rows:
            if r.family == fam:
                predictions[r.name] = _from_error_target(line.predict(r.signals))
    est = [predictions[r.name] for r in rows]
    truth = [r.top1 for r in rows]
    result = validity(est, truth, [r.family for r in rows], [r.signals["macs"] for r in rows], calibrated=True)
    assert result.mae == mean_abs_error(est, truth)
    return result, picks
