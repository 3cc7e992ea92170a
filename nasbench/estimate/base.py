"""The estimator interface: a built model in, an estimated ImageNet top-1 (or a score) out.

Estimators are pluggable the way Optuna's samplers are: an object with ``name``,
``kind``, ``calibrated`` and ``estimate(model, imgsz)``. Pass one to the Python API or
the search; the CLI names the registered ones (``nasbench.estimate.ESTIMATORS``).

An estimator sees the model and its input size, nothing else: no name, no family, no
published number. That is what lets a user's ``file.py:factory`` get an estimate, and
what keeps the validity figures honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import nn


@dataclass(frozen=True)
class Estimate:
    """One estimate of one model, with what is needed to trust (or distrust) it."""

    estimator: str
    kind: str  # "cost" | "zero-cost" | "combined" | "fitted" | "training"
    value: float  # what a search maximises: top-1 % when ``calibrated``, else a score (higher = better)
    calibrated: bool
    seconds: float
    details: dict[str, float] = field(default_factory=dict)  # the raw scores/features it used

    @property
    def top1(self) -> float | None:
        """Estimated ImageNet-1k top-1 %, or None for estimators that only rank."""
        return self.value if self.calibrated else None


@runtime_checkable
class Estimator(Protocol):
    name: str
    kind: str
    calibrated: bool
    label: str  # the axis label of its value, e.g. "estimated ImageNet top-1 %"
    description: str  # one line: what it computes

    def estimate(self, model: nn.Module, imgsz: int) -> Estimate:
        """Estimate ``model`` (a freshly initialised classifier; left unchanged) at ``imgsz`` px."""
        ...

# The registered estimators also have ``signals`` (what they read), ``value_of(signals)``
# and ``reference_values(rows)`` (their out-of-sample values on the reference table), which
# is what ``estimator_validity`` and the benchmark use; a plugged-in one needs only the above.
