"""The online latency model: non-negative least squares, relative-error fit, leave-one-out margin."""

from __future__ import annotations

import numpy as np
import pytest

from nasbench.estimate.features import ArchFeatures
from nasbench.nas.latency_model import MIN_MARGIN, MIN_POINTS, fit_latency_model, fit_weights, nnls, work_vector


def test_nnls_on_a_hand_example() -> None:
    # min ||a x - b|| with x >= 0: unconstrained optimum is x = (1, -1); with x2 held at 0
    # the best x1 is (a1 . b) / (a1 . a1) = (1 + 0 + 0) / 2 = 0.5.
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([1.0, -1.0, 0.0])
    assert np.allclose(np.linalg.lstsq(a, b, rcond=None)[0], [1.0, -1.0])
    assert np.allclose(nnls(a, b), [0.5, 0.0])


def test_weights_are_recovered_exactly_from_noise_free_latencies() -> None:
    rng = np.random.default_rng(0)
    true_ms_per_unit = np.array([2e-9, 5e-9, 1e-9, 3e-7, 0.01, 1.5])
    work = np.column_stack([rng.uniform(1e8, 1e9, 12), rng.uniform(1e6, 1e7, 12), rng.uniform(0, 5e7, 12),
                            rng.uniform(1e6, 5e6, 12), rng.integers(40, 200, 12), np.ones(12)])
    latency = work @ true_ms_per_unit
    assert np.allclose(fit_weights(work, latency), true_ms_per_unit, rtol=1e-6)
    model = fit_latency_model(work.tolist(), latency.tolist())
    assert model is not None and model.points == 12
    assert max(model.loo_errors) < 1e-6  # every point predicted from the other 11
    assert model.margin == MIN_MARGIN  # never trusted to better than 10%
    assert model.predict_ms(work[0]) == pytest.approx(latency[0])
    # over budget only when even 10% faster than predicted is over
    assert not model.over_budget(latency[0], latency[0] * 0.95)
    assert not model.over_budget(latency[0], latency[0] * 0.91)
    assert model.over_budget(latency[0], latency[0] * 0.89)


def test_too_few_points_predict_nothing_and_the_margin_follows_the_error() -> None:
    work = [[float(i), 0.0, 0.0, 0.0, 0.0, 1.0] for i in range(1, MIN_POINTS)]
    assert fit_latency_model(work, [1.0 + i for i in range(1, MIN_POINTS)]) is None
    rng = np.random.default_rng(1)
    work = [[float(i), 0.0, 0.0, 0.0, 0.0, 1.0] for i in range(1, 21)]
    noisy = [(1.0 + w[0]) * float(rng.choice([0.7, 1.3])) for w in work]  # +-30%: the margin must widen
    model = fit_latency_model(work, noisy)
    assert model is not None and model.margin > 0.2


def test_work_vector_reads_the_counter_features() -> None:
    f = ArchFeatures(imgsz=64, macs=100, params=10, weight_layers=7, conv_dense_macs=30, conv_pointwise_macs=20,
                     conv_grouped_macs=5, linear_macs=10, attention_macs=35, activation_elements=1000,
                     positional_params=9)
    assert work_vector(f) == [60.0, 5.0, 35.0, 1000.0, 7.0, 1.0] == work_vector(f.to_dict())
