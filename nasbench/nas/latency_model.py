"""A latency model fitted online on a study's own measured trials: predict before timing.

Latency is modelled as a sum of non-negative costs per unit of work, one per kind of work
the counter already separates (dense/pointwise conv and linear MACs, grouped/depthwise
conv MACs, attention MACs, activation elements written, weight layers run) plus a fixed
overhead. Non-negative weights keep the model physical (more work never predicts a faster
model), so it extrapolates sensibly from a handful of trials, which a free linear or
log-linear fit does not. It is fitted on relative error (each row divided by its measured
latency), because the budget decision is relative.

Its validity is its own leave-one-out error on the measured trials; a candidate is
called "predicted over budget" only when even the optimistic end of that error is over
(``prediction * (1 - margin) > budget``), and the study records every such prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasbench.estimate.features import ArchFeatures

# The columns, in order; each is one kind of work per image.
WORK_COLUMNS = ("dense_macs", "grouped_macs", "attention_macs", "activation_elements", "weight_layers", "overhead")
MIN_POINTS = 8  # below this many measured trials the model predicts nothing
MIN_MARGIN = 0.10  # never trust the model to better than 10%
MAX_MARGIN = 0.60  # a model this bad still stops nothing but the grossest outliers


def work_vector(f: ArchFeatures | dict) -> list[float]:
    """The model's inputs from a model's architecture features (``ArchFeatures`` or its dict)."""
    d = f.to_dict() if isinstance(f, ArchFeatures) else dict(f)
    dense = d["conv_dense_macs"] + d["conv_pointwise_macs"] + d["linear_macs"]
    return [float(dense), float(d["conv_grouped_macs"]), float(d["attention_macs"]),
            float(d["activation_elements"]), float(d["weight_layers"]), 1.0]


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson-Hanson active set), for small dense problems."""
    n = a.shape[1]
    x, passive = np.zeros(n), np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        gradient = a.T @ (b - a @ x)
        if passive.all() or gradient[~passive].max(initial=0.0) <= 1e-12:
            break
        passive[np.argmax(np.where(passive, -np.inf, gradient))] = True
        for _ in range(n + 1):  # each pass drops >= 1 index from the passive set
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            shrinking = passive & (z <= 0)
            step = np.min(x[shrinking] / np.maximum(x[shrinking] - z[shrinking], 1e-300))
            x = x + step * (z - x)
            passive &= x > 1e-15
    return x


def fit_weights(work: Sequence[Sequence[float]], latency_ms: Sequence[float]) -> np.ndarray:
    """Non-negative ms per unit of each work column, minimising squared relative error."""
    a = np.asarray(work, dtype=float)
    y = np.asarray(latency_ms, dtype=float)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-30)  # columns span 1 to 1e9: condition them
    rows = (a / scale) / y[:, None]
    return nnls(rows, np.ones(len(y))) / scale


@dataclass(frozen=True)
class LatencyModel:
    weights: tuple[float, ...]
    points: int
    loo_errors: tuple[float, ...]  # |pred - measured| / measured, each point left out of its own fit

    @property
    def median_error(self) -> float:
        return float(np.median(self.loo_errors))

    @property
    def margin(self) -> float:
        """How much faster than predicted a candidate might still be (80th percentile of the
        leave-one-out error, clipped to [MIN_MARGIN, MAX_MARGIN])."""
        q80 = float(np.quantile(self.loo_errors, 0.8))
        return min(max(q80, MIN_MARGIN), MAX_MARGIN)

    def predict_ms(self, work: Sequence[float]) -> float:
        return float(np.dot(self.weights, work))

    def over_budget(self, predicted_ms: float, budget_ms: float) -> bool:
        return predicted_ms * (1.0 - self.margin) > budget_ms

    def describe(self) -> dict[str, float | int]:
        return {"points": self.points, "loo_median_error": round(self.median_error, 4),
                "margin": round(self.margin, 4)}


def fit_latency_model(work: Sequence[Sequence[float]], latency_ms: Sequence[float]) -> LatencyModel | None:
    """The model on every point, with its leave-one-out errors; None below MIN_POINTS."""
    pairs = [(w, y) for w, y in zip(work, latency_ms) if y is not None and math.isfinite(y) and y > 0]
    if len(pairs) < MIN_POINTS:
        return None
    a = [w for w, _ in pairs]
    y = [v for _, v in pairs]
    errors = []
    for i in range(len(y)):
        rest = [j for j in range(len(y)) if j != i]
        weights = fit_weights([a[j] for j in rest], [y[j] for j in rest])
        errors.append(abs(float(np.dot(weights, a[i])) - y[i]) / y[i])
    return LatencyModel(tuple(float(v) for v in fit_weights(a, y)), len(y), tuple(errors))
