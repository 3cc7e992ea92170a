"""A small linear model of top-1 on family-free features: fitted in milliseconds, so it is
fitted when needed (on the reference table) and never shipped as opaque weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RIDGE = 1.0  # on standardised features; shrinks toward the mean when features are collinear


@dataclass(frozen=True)
class LinearFit:
    """top-1 = intercept + sum_i weight_i * (feature_i - mean_i) / scale_i."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    n: int  # models it was fitted on

    def predict(self, values: Mapping[str, float]) -> float:
        z = [(values[f] - m) / s for f, m, s in zip(self.features, self.mean, self.scale)]
        return float(self.intercept + np.dot(self.weights, z))

    def describe(self, target: str = "top-1") -> str:
        terms = " ".join(f"{w:+.3f}·z({f})" for f, w in zip(self.features, self.weights))
        return f"{target} = {self.intercept:.3f} {terms} (ridge, {self.n} models)"


def fit_linear(rows: Sequence[Mapping[str, float]], truth: Sequence[float], features: Sequence[str],
               ridge: float = DEFAULT_RIDGE) -> LinearFit:
    """Ridge regression of ``truth`` on the standardised ``features`` of ``rows`` (intercept not shrunk)."""
    if len(rows) < 2:
        raise ValueError("a linear fit needs at least 2 models")
    x = np.array([[row[f] for f in features] for row in rows], dtype=float)
    y = np.array(truth, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    design = np.c_[np.ones(len(z)), z]
    penalty = ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    return LinearFit(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()), tuple(coef[1:].tolist()),
                     float(coef[0]), len(rows))
