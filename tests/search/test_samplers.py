"""What `--sampler auto` builds, and the GP-then-TPE hand-over."""

from __future__ import annotations

import optuna
import pytest

from nasbench.nas.samplers import GP_MAX_TRIALS, GpThenTpe, auto_choice, make_sampler


def test_auto_is_gp_for_one_family_and_one_worker_only() -> None:
    assert auto_choice(1, one_worker=True) == "gp"
    assert auto_choice(2, one_worker=True) == "tpe"  # per-family knobs: GP would sample them at random
    assert auto_choice(1, one_worker=False) == "tpe"  # no constant liar in GP
    assert isinstance(make_sampler("auto", 0), GpThenTpe)
    assert isinstance(make_sampler("auto", 0, n_spaces=3), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("auto", 0, one_worker=False), optuna.samplers.TPESampler)
    assert GP_MAX_TRIALS == 200


def test_gp_then_tpe_hands_over_after_its_trial_limit() -> None:
    """Each trial's parameters come from one sampler, chosen by the trials the study held at its start."""
    sampler = GpThenTpe(make_sampler("gp", 0, startup_trials=2), make_sampler("tpe", 0, startup_trials=2),
                        max_gp_trials=4)
    study = optuna.create_study(sampler=sampler)
    used = []
    for _ in range(7):
        trial = study.ask()
        used.append(type(sampler.current).__name__)
        study.tell(trial, trial.suggest_float("x", -1.0, 1.0) ** 2)
    assert used == ["GPSampler"] * 4 + ["TPESampler"] * 3  # GP while the study holds <= 4 trials, this one included


@pytest.mark.parametrize("name", ["cmaes", "AUTO"])
def test_unknown_sampler_names_the_choices(name: str) -> None:
    from nasbench.errors import UserError

    with pytest.raises(UserError, match=f"unknown sampler '{name}' \\(use auto, tpe, gp, nsga2, random\\)"):
        make_sampler(name, 0)
