"""Synthetic studies shared by the report tests (built with Optuna directly, in memory)."""

from __future__ import annotations

import optuna
import pytest

from tests.report.synthetic import make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def proxy_study() -> optuna.Study:
    return make_study(48, name="proxy-study")


@pytest.fixture(scope="session")
def cost_study() -> optuna.Study:
    return make_study(40, name="cost-study", objective="macs", seed=1)


@pytest.fixture(scope="session")
def evil_detector_study() -> optuna.Study:
    """Detector target; study name, space path, a knob value and fail reasons carry <script>."""
    return make_study(40, name="det", detector=True, evil=True, seed=2)
