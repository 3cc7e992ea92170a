"""The search's Optuna samplers, and which one ``--sampler auto`` (the default) picks.

Measured on cost-only searches, 30 trials (benchmarks/search_efficiency.py):
- one family (mobilevit, efficientvit at two budgets each, 3 seeds): GPSampler's hypervolume
  beat TPE's in every setting (results/search_efficiency_startup_cpu.md, section 4); a later
  6-seed paired run at efficientvit 25 ms was even (GP ahead in 3 of 6 seeds, 1.10x random
  against TPE's 1.16x; results/search_efficiency_auto_cpu.md, section 4). Those runs asked
  for numeric choices as categoricals, whose values GP's kernel puts equally far apart; asked
  for by index (``space.KNOB_ENCODINGS``), GP went from 1.23x to 1.66x random there, ahead in
  3 of 3 paired seeds (same file, section 5);
- ``--space all``: TPE beat GP at both budgets (results/search_efficiency_gp_all_cpu.md).
  Each family's knobs exist only in that family's trials, and GPSampler models only the
  knobs every trial has (here: the family), so it samples the rest at random; TPE's
  ``group`` mode models each family's knobs on its own trials.

So ``auto`` is GP for a one-family study run by one worker, TPE otherwise: several workers
need TPE's constant liar (GP would send them all to the same point), and GP refits on every
trial before each proposal, which grows from 0.4 s at 30 trials to 2.2 s at 200 on the
2-core CPU, so past ``GP_MAX_TRIALS`` an ``auto`` study goes on with TPE.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.samplers import BaseSampler

from nasbench.errors import UserError

SAMPLERS = ("auto", "tpe", "gp", "nsga2", "random")
# TPE (and GP) sample at random until this many trials finished, the enqueued presets and their
# aimed versions included. 5 rather than 10: with the start trials already spread over the space, more
# random ones are mostly over the budget (benchmarks/results/search_efficiency_startup_cpu.md).
STARTUP_TRIALS = 5
GP_MAX_TRIALS = 200  # an `auto` study's trials (all states) after which TPE proposes instead of GP


def auto_choice(n_spaces: int, one_worker: bool) -> str:
    """What ``auto`` means for a search over ``n_spaces`` families: "gp" (then TPE past
    GP_MAX_TRIALS) for one family and one worker, else "tpe"."""
    return "gp" if n_spaces == 1 and one_worker else "tpe"


def make_sampler(name: str, seed: int, startup_trials: int = STARTUP_TRIALS, n_spaces: int = 1,
                 one_worker: bool = True) -> BaseSampler:
    """Samplers read the constraints set on each trial (``Trial.set_constraint``)."""
    if name == "auto":
        if auto_choice(n_spaces, one_worker) == "tpe":
            return make_sampler("tpe", seed, startup_trials)
        return GpThenTpe(make_sampler("gp", seed, startup_trials), make_sampler("tpe", seed, startup_trials))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            # constant_liar: parallel workers treat running trials as bad, so they do not all
            # propose the point TPE currently likes best (no effect with one worker)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=startup_trials,
                                              constant_liar=True)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "gp":
            try:
                import scipy  # noqa: F401  (GPSampler needs it)
            except ImportError:
                raise UserError("--sampler gp needs scipy (pip install scipy); or use tpe, nsga2, random") from None
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials)
    raise UserError(f"unknown sampler '{name}' (use {', '.join(SAMPLERS)})")


class GpThenTpe(BaseSampler):
    """GP while the study holds at most GP_MAX_TRIALS trials, TPE after that. The choice is
    made once per trial (in ``before_trial``), so one trial's parameters come from one sampler."""

    def __init__(self, gp: BaseSampler, tpe: BaseSampler, max_gp_trials: int = GP_MAX_TRIALS) -> None:
        self.gp, self.tpe, self.max_gp_trials = gp, tpe, max_gp_trials
        self.current: BaseSampler = gp

    def before_trial(self, study, trial) -> None:
        many = len(study.get_trials(deepcopy=False)) > self.max_gp_trials  # this trial included
        self.current = self.tpe if many else self.gp
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.gp.reseed_rng()
        self.tpe.reseed_rng()
