"""The search loop: an Optuna study over one or more spaces under a latency budget.

Design (objectives). A feasible trial scores one objective (``--objective``): ``estimate``
(default) — an accuracy estimator validated against published ImageNet top-1
(``nasbench.estimate``); ``proxy`` — top-1 after short training on ``--data``; ``macs``
(``--no-train``) — MACs as "capacity". The latency budget and the optional params/MACs
caps are hard constraints given to the sampler (``Trial.set_constraint``).
``estimate`` and ``macs`` studies are two-objective (objective up, latency down): the
report's product is the Pareto front over exactly those two, and a sampler told about
both spreads its trials along the front instead of piling them at the budget (measured:
``benchmarks/results/search_efficiency_cpu.md``). ``proxy`` studies stay single-objective,
because Optuna's pruners do not work in multi-objective studies (``trial.report`` raises
there) and early stopping of poor proxy runs is where most of their time is saved; their
front is derived afterwards from all feasible trials. Studies written before the change
keep their single direction when resumed.

A trial is staged so that expensive work only happens to candidates that deserve it:
sample (a new study's first trials are the presets, ``nasbench.nas.start``) -> constraints
of the space (never built when broken) -> same config seen before? (reuse its
measurements) -> features and caps counted on the meta device (ms, no weights) -> the
study's latency model (``nasbench.nas.latency_model``) puts it well over budget: recorded
infeasible with the prediction, never timed -> build + one timed run (reject at once when
far over budget) -> full timing (start trials through the cross-study cache,
``nasbench.nas.measurements``) -> over budget: recorded infeasible, never trained ->
the objective (estimate, MACs, or proxy training with intermediate reports and a pruner).
An infeasible trial completes with an objective value in the objective's units (its MACs,
its estimate; 0 for an untrained proxy), so that the sampler's model learns from it.
Every trial stores its config, result row, timing context and proxy result as user
attributes (see ``nasbench.report.study`` for the reader side).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from nasbench import __version__, zoo
from nasbench.comparison import CompareOptions, measure_cost, peaks_for, prepare, result_row
from nasbench.device import resolve_device
from nasbench.errors import BuildError, MeasureError, UserError, first_line
from nasbench.families.base import DEPLOY_FORM_REVISION, config_to_dict, fuse_for_deploy
from nasbench.metrics.latency import Timing, TimingPlan, check_cuda_graph, device_name, time_models
from nasbench.metrics.roofline import Peaks
from nasbench.nas import measurements
from nasbench.nas.budget import format_ms
from nasbench.nas.latency_model import LatencyModel, fit_latency_model, work_vector
from nasbench.nas.space import KNOB_ENCODING, Candidate, Space, sample
from nasbench.nas.start import (
    MAX_AIM_ROUNDS,
    START_ATTR,
    aimed_values,
    deploy_macs,
    latency_exponent,
    optuna_params,
    values_from_params,
    within_aim_window,
)
from nasbench.nas.workers import worker_id

FAR_OVER_BUDGET = 3.0  # one run slower than this x budget is rejected without more timing
TIME_EVERY_KTH_PREDICTED = 4  # every 4th candidate predicted over budget is timed anyway: the model keeps learning
LATENCY_MODEL_WINDOW = 200  # the latency model is fitted on the most recent measured trials
STARTS = ("presets", "sampler")
PRUNERS = ("median", "hyperband")
# Intermediate proxy evaluations only steer pruning, so they score a fixed 1,000-image,
# class-balanced part of the val set (binomial noise ~1.4 points at 30% top-1, about the
# proxy's own seed-to-seed spread); the final top-1, the objective, uses the whole val set.
PROBE_VAL_IMAGES = 1000
OBJECTIVES = ("estimate", "proxy", "macs")
PARETO_OBJECTIVES = ("estimate", "macs")  # searched as (objective up, latency down); proxy prunes, so it stays single
ESTIMATE_ATTRS = ("estimator", "est_top1", "est_score", "est_seconds", "est_value")


@dataclass(frozen=True)
class SearchOptions:
    budget_ms: float
    device: str = "auto"
    target: str = "backbone"  # "backbone" | "detector"
    imgsz: int | None = None  # None: the space's imgsz
    det_imgsz: int = 640
    data: str | None = None  # None: the built-in synthetic task
    proxy_steps: int = 120
    proxy_seconds: float | None = None
    proxy_imgsz: int = 32
    proxy_batch: int = 64
    proxy_lr: float = 2e-3
    pruner: str = "median"  # one of PRUNERS (the proxy objective only)
    objective: str = "estimate"  # one of OBJECTIVES
    estimator: str = "default"  # for objective "estimate": a name in nasbench.estimate.ESTIMATORS
    sampler: str = "auto"  # one of SAMPLERS (nasbench.nas.samplers says what auto picks)
    start: str = "presets"  # one of STARTS: enqueue the presets (and aimed versions) first, or not
    predict_latency: bool = True  # skip timing candidates the online latency model puts over budget
    seed: int = 0
    max_params: int | None = None
    max_macs: int | None = None
    dtype: str = "fp32"
    threads: int | None = None
    backend: str = "eager"  # runtime candidates are timed on (nasbench.metrics.backends)
    cuda_graph: bool = False  # also time CUDA-graph replay (a column; the budget judges the eager latency)
    unstable_timing: str = "fail"  # one of UNSTABLE: a timing still unstable after the re-timings fails the trial
    timing: TimingPlan = field(default_factory=lambda: TimingPlan(warmup=3, runs=15, rounds=1, time_limit_s=10))

    @property
    def train(self) -> bool:
        """True when candidates are trained (the ``proxy`` objective)."""
        return self.objective == "proxy"


def study_directions(objective: str) -> list[str]:
    return ["maximize", "minimize"] if objective in PARETO_OBJECTIVES else ["maximize"]


# ----------------------------------------------------------------------------- naming
def default_study_name(spaces: list[Space], space_arg: str, opts: SearchOptions, device_type: str) -> str:
    """Same command -> same name, so re-running resumes and adds trials."""
    label = space_arg if len(spaces) > 1 else spaces[0].name
    imgsz = opts.imgsz or spaces[0].imgsz
    parts = [label, opts.target, device_type, f"{imgsz}px", format_ms(opts.budget_ms)]
    if opts.backend != "eager":
        parts.append(opts.backend)
    if opts.objective == "macs":
        parts.append("costonly")
    elif opts.objective == "proxy":
        parts.append("proxy")
    if opts.max_params:
        parts.append(f"p{opts.max_params}")
    if opts.max_macs:
        parts.append(f"m{opts.max_macs}")
    return "-".join(parts)


def config_key(config_dict: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- sampler
def record_constraint(trial: optuna.Trial, values: dict[str, float]) -> None:
    """Give the sampler the constraint values (<= 0 feasible) and keep them for reports."""
    for key, value in values.items():
        trial.set_constraint(key, value)
    trial.set_user_attr("constraint", list(values.values()))


def make_pruner(proxy_steps: int, name: str = "median") -> optuna.pruners.BasePruner:
    """How proxy runs stop early (only the ``proxy`` objective reports intermediate values).

    ``median``: the median rule, but only after a third of the proxy run and against >= 3
    other curves (infeasible trials have no curve, so Optuna's startup count alone would be
    misleading). ``hyperband``: successive halving over the proxy's training steps in
    brackets of reduction factor 3 from a sixth of the run (the first evaluation) to all of
    it: most candidates stop at the first rungs, the best third of each rung goes on.
    """
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, proxy_steps // 6), max_resource=proxy_steps,
                                              reduction_factor=3)
    if name != "median":
        raise UserError(f"unknown pruner '{name}' (use {', '.join(PRUNERS)})")
    return optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=max(1, proxy_steps // 3), n_min_trials=3)


# ----------------------------------------------------------------------------- measuring
RETIMES = 2  # an unstable timing is taken again this many times before it is failed (or accepted)
UNSTABLE = ("fail", "accept")
RETIME_PAUSE_S = 2.0  # between attempts: other processes' bursts are often shorter


class Search:
    """Holds what every trial shares: spaces, options, the loaded proxy data."""

    def __init__(self, spaces: list[Space], opts: SearchOptions, log: Callable[[str], None] = lambda s: None):
        self.spaces = {s.name: s for s in spaces}
        self.opts = opts
        self.device = resolve_device(opts.device)
        check_cuda_graph(opts.cuda_graph, self.device, opts.backend)  # before a study exists
        self.log = log
        self.data = None
        self._peaks: Peaks | None = None
        self.knob_encoding = KNOB_ENCODING  # a resumed study's own, once it is open (``use_study_encoding``)
        self.max_aim_rounds = MAX_AIM_ROUNDS  # benchmarks compare fewer (0: no aimed versions)
        self.estimate_infeasible = True  # benchmarks compare MACs as an infeasible trial's value (before)
        self.complete_predicted = True  # benchmarks compare pruning a trial predicted over budget (before)
        self.run_counter: StopAfterTimed | None = None  # this run's trial count, where a command set one

    def use_study_encoding(self, study: optuna.Study) -> None:
        """Ask for knobs as the study's earlier trials were asked (studies made before the
        encoding was recorded used "value")."""
        self.knob_encoding = study.user_attrs.get("knob_encoding", "value" if study.user_attrs else KNOB_ENCODING)

    # -- data
    def proxy_data(self):
        if self.data is None and self.opts.train:
            from nasbench.proxy.data import load_data

            self.log("loading proxy data")
            self.data = load_data(self.opts.data, imgsz=self.opts.proxy_imgsz, seed=self.opts.seed).to(self.device)
        return self.data

    def proxy_description(self) -> dict[str, Any] | None:
        if not self.opts.train:
            return None
        data = self.proxy_data()
        return {"data": data.info.source,
                "synthetic": bool(data.info.synthetic), "classes": data.num_classes, "steps": self.opts.proxy_steps,
                "seconds": self.opts.proxy_seconds, "imgsz": self.opts.proxy_imgsz, "batch": self.opts.proxy_batch,
                "lr": self.opts.proxy_lr, "seed": self.opts.seed,
                "train_images": int(data.train_x.shape[0]), "val_images": int(data.val_x.shape[0]),
                "probe_val_images": min(PROBE_VAL_IMAGES, int(data.val_x.shape[0]))}

    # -- one model
    def imgsz_for(self, space: Space) -> int:
        return self.opts.imgsz or space.imgsz

    def measure(self, spec: zoo.ModelSpec, label: str, imgsz: int, reject_over_ms: float | None = None):
        """Build + count + time one model. Returns (row, rejected_early).

        An unstable timing is not judged against the budget: it is taken again (up to
        RETIMES times, after a pause) and every attempt is kept in the row; still unstable,
        or a backend that cannot run the model, fails the trial with the reason.
        """
        m = prepare(spec, label, CompareOptions(imgsz=imgsz, device=str(self.device), crosscheck=False))
        m.cost = measure_cost(m)
        if reject_over_ms is not None and self.opts.backend == "eager":  # one warm run: far over budget -> stop
            # In this process: a clean child per probe would cost more than the one run it times,
            # and "far over budget" does not turn on the few % that history can add.
            probe = self.time(m.model, label, imgsz, TimingPlan(warmup=1, runs=1, rounds=1, min_runs=1, isolate=False))
            if probe.median_ms > reject_over_ms:
                return result_row(m, probe, 1, None), True
        attempts = [self.time(m.model, label, imgsz, self.opts.timing)]
        while attempts[-1].unstable and attempts[-1].error is None and len(attempts) <= RETIMES:
            time.sleep(RETIME_PAUSE_S)
            attempts.append(self.time(m.model, label, imgsz, self.opts.timing))
        timing = attempts[-1]
        if timing.error is not None:
            raise MeasureError(timing.error)
        row = result_row(m, timing, 1, self.peaks())
        if len(attempts) > 1:
            row["timing_attempts"] = "; ".join(f"{t.median_ms:.2f} ms ({t.unstable_reason or 'stable'})"
                                               for t in attempts)
        if timing.unstable and self.opts.unstable_timing == "fail":
            raise MeasureError(f"timing unstable in {len(attempts)} attempts ({timing.unstable_reason}); not judged "
                               "against the budget: re-run on a quieter machine to retry")
        return row, False

    def time(self, model, label: str, imgsz: int, plan: TimingPlan) -> Timing:
        return time_models({label: model}, imgsz, device=self.device, dtype=self.opts.dtype,
                           threads=self.opts.threads, plan=plan, backend=self.opts.backend,
                           cuda_graph=self.opts.cuda_graph and plan.runs > 1)[label]

    def peaks(self) -> Peaks:
        if self._peaks is None:
            self._peaks = peaks_for(self.device, self.opts.dtype, self.opts.threads, False, self.log)
        return self._peaks

    def meta_features(self, spec: zoo.ModelSpec, imgsz: int):
        """Architecture features of the deploy form, counted on the meta device (no weights)."""
        from nasbench.estimate.features import arch_features

        return arch_features(fuse_for_deploy(spec.build_for_counting()), imgsz)

    def over_caps(self, params: int, macs: int) -> dict[str, float]:
        """The --max-params/--max-macs constraints a count breaks (empty: within them)."""
        return {key: excess for key, excess in self.cap_excess(params, macs).items() if excess > 0}

    def measurement_settings(self, spec: zoo.ModelSpec, imgsz: int) -> dict[str, Any]:
        """Everything that changes a measured row: the key of the cross-study cache."""
        import torch

        detector = self.opts.target == "detector"
        return {"config": config_key({"family": spec.family, **config_to_dict(spec.config)}), "imgsz": imgsz,
                "device": self.device.type, "device_name": device_name(self.device), "dtype": self.opts.dtype,
                "threads": self.opts.threads or torch.get_num_threads(), "backend": self.opts.backend,
                "timing": asdict(self.opts.timing), "target": self.opts.target,
                "det_imgsz": self.opts.det_imgsz if detector else None, "torch": torch.__version__,
                "nasbench": __version__, "deploy_form": DEPLOY_FORM_REVISION}

    def measure_reusing(self, spec: zoo.ModelSpec, label: str, imgsz: int, reject_over_ms: float | None = None,
                        use_cache: bool = True) -> tuple[dict[str, Any], bool, bool]:
        """``measure`` plus the detector columns for a detector target; with ``use_cache``
        through the cross-study cache (start trials and presets). Returns (row, rejected_early,
        from_cache)."""
        key = measurements.measurement_key(self.measurement_settings(spec, imgsz)) if use_cache else None
        cached = measurements.lookup(key) if key else None
        if cached is not None:
            return {**cached, "name": label}, False, True
        row, rejected = self.measure(spec, label, imgsz, reject_over_ms)
        if self.opts.target == "detector" and not rejected:
            row.update(self.detector_row(spec, label))
        if key and not rejected:
            measurements.store(key, row)
        return row, rejected, False

    # -- the latency model
    def latency_model(self, trials: list[optuna.trial.FrozenTrial]) -> LatencyModel | None:
        """Fitted on the study's own measured trials (any worker), the most recent ones."""
        points = [(t.user_attrs["work"], t.user_attrs["row"]["latency_ms"]) for t in trials
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "work" in t.user_attrs
                  and "row" in t.user_attrs and "duplicate_of" not in t.user_attrs]
        points = points[-LATENCY_MODEL_WINDOW:]
        return fit_latency_model([w for w, _ in points], [y for _, y in points])

    def predict(self, trial: optuna.Trial, work: list[float], caps: dict[str, float]) -> tuple[float | None, bool]:
        """The model's prediction (recorded on the trial; None without a model) and whether the
        candidate is skipped as predicted over budget (recorded, never timed). Every k-th such
        one is timed anyway."""
        if not self.opts.predict_latency or self.opts.target == "detector":
            return None, False
        trials = trial.study.get_trials(deepcopy=False)  # one read for the fit and the count
        model = self.latency_model(trials)
        if model is None:
            return None, False
        predicted = model.predict_ms(work)
        trial.set_user_attr("pred_latency_ms", predicted)
        trial.set_user_attr("latency_model", model.describe())
        if not model.over_budget(predicted, self.opts.budget_ms):
            return predicted, False
        earlier = sum(1 for t in trials if t.user_attrs.get("predicted_over"))
        trial.set_user_attr("predicted_over", True)
        if earlier % TIME_EVERY_KTH_PREDICTED == TIME_EVERY_KTH_PREDICTED - 1:
            trial.set_user_attr("predicted_over_timed", True)  # timed anyway, to check the model
            return predicted, False
        record_constraint(trial, {"latency_over_budget_ms": predicted - self.opts.budget_ms, **caps})
        trial.set_user_attr("reason", f"predicted over budget: {predicted:.1f} ms > {self.opts.budget_ms:g} ms even "
                                      f"{model.margin:.0%} faster (latency model on {model.points} measured trials, "
                                      f"median error {model.median_error:.0%}; never timed)")
        return predicted, True

    def enqueue_aimed(self, trial: optuna.Trial, space: Space, cand: Candidate, row: dict[str, Any]) -> None:
        """After a start trial is timed: a width-scaled version aimed at the budget. A preset is
        scaled by MACs; an aimed version timed outside AIM_WINDOW is aimed once more along the
        latency-MACs slope of its own timing and the one it was aimed from."""
        point = (row["macs"], row["latency_ms"])
        # an aimed trial of a study made before the secant step has no round: it is not aimed again
        aim_round = trial.user_attrs.get("aim_round", 0 if trial.user_attrs.get("preset") else MAX_AIM_ROUNDS)
        if aim_round >= self.max_aim_rounds or (aim_round and within_aim_window(point[1], self.opts.budget_ms)):
            return
        if self.run_counter is not None and self.run_counter.timed + 1 >= self.run_counter.trials:
            return  # this trial is the run's last: an aim queued now would be left waiting in the study
        exponent = latency_exponent(tuple(trial.user_attrs["aimed_from_point"]), point) if aim_round else 1.0
        imgsz = self.imgsz_for(space)
        values = aimed_values(space, values_from_params(space, cand.params),
                              lambda config: deploy_macs(space.family.name, config, imgsz), point[1], point[0],
                              self.opts.budget_ms, exponent)
        if values is None:
            return
        multi = len(self.spaces) > 1
        params = optuna_params(space, values, f"{space.name}." if multi else "", multi, self.knob_encoding)
        attrs = {START_ATTR: "aimed", "aimed_from": trial.user_attrs.get("preset") or trial.user_attrs["aimed_from"],
                 "aim_round": aim_round + 1, "aimed_from_point": list(point), "aim_exponent": round(exponent, 4)}
        trial.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)

    def train(self, spec: zoo.ModelSpec, stop: Callable[[int, float], bool] | None = None):
        import torch

        from nasbench.proxy.train import EvalPlan, Recipe, train_proxy

        data = self.proxy_data()
        torch.manual_seed(self.opts.seed)  # same initial weights whatever the trial order
        model = spec.build(num_classes=data.num_classes)
        deadline = None if self.opts.proxy_seconds is None else time.monotonic() + self.opts.proxy_seconds

        def callback(step: int, top1: float) -> bool:
            if deadline is not None and time.monotonic() > deadline:
                return True
            return bool(stop and stop(step, top1))

        recipe = Recipe(steps=self.opts.proxy_steps, batch=self.opts.proxy_batch, lr=self.opts.proxy_lr)
        return train_proxy(model, data, recipe, EvalPlan(probe_val=PROBE_VAL_IMAGES), device=self.device,
                           seed=self.opts.seed, callback=callback)

    # -- the objective
    def constraint(self, row: dict[str, Any]) -> dict[str, float]:
        latency = row.get("det_latency_ms") if self.opts.target == "detector" else row["latency_ms"]
        return {"latency_over_budget_ms": latency - self.opts.budget_ms, **self.cap_excess(row["params"], row["macs"])}

    def cap_excess(self, params: int, macs: int) -> dict[str, float]:
        """(value - cap) / cap for each cap set by --max-params/--max-macs (> 0: over the cap)."""
        caps = {"params_over_cap": (params, self.opts.max_params), "macs_over_cap": (macs, self.opts.max_macs)}
        return {key: (value - cap) / cap for key, (value, cap) in caps.items() if cap}

    def infeasible_value(self, trial: optuna.Trial, spec: zoo.ModelSpec, imgsz: int, macs: int) -> float:
        """The objective value of a candidate over the budget (timed, or predicted). GPSampler
        fits its model of the objective on every completed trial, infeasible ones included (the
        constraint is modelled apart), so the value must be in the objective's units: MACs, or
        the estimate (a second or two; MACs once stood in for it, which told the model that an
        over-budget candidate scores millions of times a feasible one). A proxy run is not paid
        for: 0 % top-1."""
        if self.opts.objective == "estimate" and self.estimate_infeasible:
            return self.estimate_trial(trial, spec, imgsz)
        return float(macs) if not self.opts.train else 0.0

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            value = self._objective(trial)
            if len(trial.study.directions) == 1:
                return value
            return value, self.trial_latency_ms(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted (Ctrl-C or SIGTERM); re-run the same command to resume")
            raise
        except BuildError as exc:  # this candidate only: the trial fails with the reason, the search goes on
            trial.set_user_attr("reason", str(exc)[:300])
            raise RuntimeError(str(exc)) from None
        except (optuna.TrialPruned, UserError):
            raise
        except Exception as exc:  # recorded on the trial; Optuna marks it FAIL
            trial.set_user_attr("reason", f"{type(exc).__name__}: {first_line(exc, '')}"[:300])
            raise

    def _objective(self, trial: optuna.Trial) -> float:
        space, cand = self.sample(trial)
        if cand.violations:
            record_constraint(trial, {"space_constraints": 1.0})
            trial.set_user_attr("reason", "violates " + "; ".join(cand.violations) + " (never built)")
            raise optuna.TrialPruned()
        earlier = self.find_measured(trial.study, trial.user_attrs["config_key"], trial.number)
        if earlier is not None:
            return self.reuse(trial, earlier)

        label, imgsz = trial.user_attrs["name"], self.imgsz_for(space)
        spec = zoo.ModelSpec(label, cand.family, cand.config, "search", space.imgsz)
        features = self.meta_features(spec, imgsz)
        work = work_vector(features)
        trial.set_user_attr("work", work)
        caps = self.over_caps(features.params, features.macs)
        if caps:  # a cap decides without allocating a weight
            record_constraint(trial, caps)
            trial.set_user_attr("reason", "; ".join(f"{k} {v:+.0%}" for k, v in caps.items())
                                + " (counted on the meta device, never built)")
            raise optuna.TrialPruned()
        start = trial.user_attrs.get(START_ATTR)  # set when the trial was enqueued
        predicted, skip = (None, False) if start else self.predict(trial, work, caps)
        if skip:
            # completed, not pruned: GPSampler models completed trials only, so a pruned one
            # taught it nothing and it proposed the same point until the every-k-th timing
            if not self.complete_predicted:
                raise optuna.TrialPruned()
            return self.infeasible_value(trial, spec, imgsz, features.macs)
        row, rejected = self.measure_trial(trial, spec, imgsz, start, predicted)
        constraint = self.constraint(row)
        record_constraint(trial, constraint)
        if start and self.opts.target == "backbone":
            self.enqueue_aimed(trial, space, cand, row)
        if rejected or max(constraint.values()) > 0:
            trial.set_user_attr("reason", self.why_infeasible(row, rejected))
            return self.infeasible_value(trial, spec, imgsz, row["macs"])
        trial.set_user_attr("feasible", True)
        if self.opts.objective == "macs":
            return float(row["macs"])
        if self.opts.objective == "estimate":
            return self.estimate_trial(trial, spec, imgsz)
        return self.train_trial(trial, spec)

    def trial_latency_ms(self, trial: optuna.Trial) -> float:
        """The latency objective of a completed trial: what the budget constrains (predicted
        for one skipped as predicted over budget)."""
        row = trial.user_attrs.get("row")
        if row is None:
            return float(trial.user_attrs["pred_latency_ms"])
        return float(row.get("det_latency_ms") if self.opts.target == "detector" else row["latency_ms"])

    def sample(self, trial: optuna.Trial) -> tuple[Space, Candidate]:
        """Family (when several spaces) and knobs; the trial's identity attributes set."""
        names = list(self.spaces)
        space = self.spaces[trial.suggest_categorical("family", names)] if len(names) > 1 else self.spaces[names[0]]
        cand: Candidate = sample(trial, space, f"{space.name}." if len(names) > 1 else "", self.knob_encoding)
        config = {"family": cand.family, **config_to_dict(cand.config)}
        for k, v in (("config", config), ("name", f"t{trial.number:04d}"), ("config_key", config_key(config)),
                     ("feasible", False), ("worker", worker_id())):
            trial.set_user_attr(k, v)
        return space, cand

    def measure_trial(self, trial: optuna.Trial, spec: zoo.ModelSpec, imgsz: int, start: str | None,
                      predicted: float | None) -> tuple[dict[str, Any], bool]:
        """Time the candidate (start trials through the cross-study cache); the row is stored
        on the trial with the latency model's error on it when there was a prediction."""
        reject = None if self.opts.target == "detector" else FAR_OVER_BUDGET * self.opts.budget_ms
        row, rejected, cached = self.measure_reusing(spec, spec.name, imgsz, reject, use_cache=bool(start))
        if start:
            trial.set_user_attr("measured_from_cache", cached)
        trial.set_user_attr("row", row)
        if predicted is not None and not rejected:
            trial.set_user_attr("pred_latency_error", abs(predicted - row["latency_ms"]) / row["latency_ms"])
        return row, rejected

    def estimate(self, spec: zoo.ModelSpec, imgsz: int) -> dict[str, Any]:
        """The estimate columns of one candidate (its family left out of fitted estimators)."""
        from nasbench.estimate import estimate_spec

        result = estimate_spec(spec, imgsz, self.opts.estimator)
        return {"estimator": result.estimator, "est_top1": result.top1,
                "est_score": None if result.calibrated else result.value, "est_seconds": result.seconds,
                "est_value": result.value}

    def estimate_trial(self, trial: optuna.Trial, spec: zoo.ModelSpec, imgsz: int) -> float:
        columns = self.estimate(spec, imgsz)
        for key, value in columns.items():
            trial.set_user_attr(key, value)
        return float(columns["est_value"])

    def train_trial(self, trial: optuna.Trial, spec: zoo.ModelSpec) -> float:
        pruned = {"flag": False, "top1": float("nan")}

        def stop(step: int, top1: float) -> bool:
            trial.report(top1, step)
            pruned["flag"], pruned["top1"] = trial.should_prune(), top1
            return pruned["flag"]

        result = self.train(spec, stop)
        trial.set_user_attr("proxy_top1", result.top1)
        trial.set_user_attr("proxy_top5", result.top5)
        trial.set_user_attr("proxy_val_loss", result.val_loss)
        trial.set_user_attr("proxy_images_per_s", result.images_per_s)
        trial.set_user_attr("proxy_curve", [{"step": p.step, "val_top1": p.val_top1, "val_loss": p.val_loss,
                                             "val_images": p.val_images} for p in result.curve])
        if pruned["flag"]:
            trial.set_user_attr("reason", f"pruned at step {result.steps_done}: top-1 {pruned['top1']:.1f}% on the "
                                          f"probe images, below the median ({result.top1:.1f}% on the whole val set)")
            raise optuna.TrialPruned()
        if result.diverged:
            trial.set_user_attr("reason", "proxy training diverged (non-finite loss)")
        return float(result.top1)

    def why_infeasible(self, row: dict[str, Any], rejected_early: bool) -> str:
        reasons = []
        latency = row.get("det_latency_ms") if self.opts.target == "detector" else row["latency_ms"]
        if latency > self.opts.budget_ms:
            what = "detector latency" if self.opts.target == "detector" else "latency"
            reasons.append(f"{what} {latency:.1f} ms > budget {self.opts.budget_ms:g} ms"
                           + (" (one run; rejected without full timing)" if rejected_early else ""))
        if self.opts.max_params and row["params"] > self.opts.max_params:
            reasons.append(f"params {row['params'] / 1e6:.2f}M > cap {self.opts.max_params / 1e6:.2f}M")
        if self.opts.max_macs and row["macs"] > self.opts.max_macs:
            reasons.append(f"MACs {row['macs'] / 1e6:.0f}M > cap {self.opts.max_macs / 1e6:.0f}M")
        return "; ".join(reasons) + " (never trained)"

    def detector_row(self, spec: zoo.ModelSpec, label: str) -> dict[str, Any]:
        from nasbench.detector.measure import detector_cost_and_latency

        return detector_cost_and_latency(spec, label, self.opts.det_imgsz, self.device, self.opts.dtype)

    # -- duplicates
    @staticmethod
    def find_measured(study: optuna.Study, key: str, number: int) -> optuna.trial.FrozenTrial | None:
        """An earlier finished trial of the same config (any worker), if there is one."""
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if t.number != number and t.user_attrs.get("config_key") == key and "row" in t.user_attrs \
                    and "duplicate_of" not in t.user_attrs:
                return t
        return None

    def reuse(self, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> float:
        for key, value in earlier.constraints.items():
            trial.set_constraint(key, value)
        for k in ("row", "constraint", "feasible", "reason", "proxy_top1", "proxy_top5", "proxy_val_loss",
                  "proxy_images_per_s", "proxy_curve", *ESTIMATE_ATTRS):
            if k in earlier.user_attrs:
                trial.set_user_attr(k, earlier.user_attrs[k])
        trial.set_user_attr("duplicate_of", earlier.number)
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned()
        return float(earlier.values[0])


# ----------------------------------------------------------------------------- study
def study_attrs(search: Search, space_arg: str, opts: SearchOptions) -> dict[str, Any]:
    import torch

    first = next(iter(search.spaces.values()))
    return {
        # first: attrs are written one by one, and a joining worker that sees any sees this one
        "knob_encoding": search.knob_encoding,
        "nasbench_version": __version__,
        "space": space_arg,
        "families": sorted({s.family.name for s in search.spaces.values()}),
        "target": opts.target,
        "budget_ms": opts.budget_ms,
        "max_params": opts.max_params,
        "max_macs": opts.max_macs,
        "imgsz": opts.imgsz or first.imgsz,
        "det_imgsz": opts.det_imgsz,
        "device": search.device.type,
        "device_name": device_name(search.device),
        "dtype": opts.dtype,
        "threads": opts.threads or torch.get_num_threads(),
        "backend": opts.backend,
        "cuda_graph": opts.cuda_graph,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if search.device.type == "cuda" else None,
        "objective": opts.objective,
        **objective_description(opts),
        **proxy_objective_description(search.proxy_description()),
        "proxy": search.proxy_description(),
        "sampler": opts.sampler,
        "start": opts.start,
        "latency_model": opts.predict_latency,
        "pruner": opts.pruner if opts.train else None,
        "seed": opts.seed,
        "wall_s": 0.0,
    }


def objective_description(opts: SearchOptions) -> dict[str, Any]:
    """What the study's value means: the estimator (objective "estimate"), its axis label and
    its validity figures against the published presets (stored with the study, so a report
    says how far the objective can be trusted)."""
    if opts.objective == "proxy":
        return {"estimator": None}  # filled in by study_attrs once the proxy data is known
    if opts.objective != "estimate":
        return {"estimator": None}
    from nasbench.estimate import estimator_validity, get_estimator, validity_line

    chosen = get_estimator(opts.estimator)
    v = estimator_validity(chosen)
    return {"estimator": chosen.name, "objective_label": chosen.label, "objective_validity": {
        "line": validity_line(chosen), "n": v.n, "tau": v.tau, "min_family_tau": v.min_family_tau,
        "pairs_right": v.pairs_right, "pairs_total": v.pairs_total, "mae": v.mae}}


def proxy_objective_description(proxy: dict[str, Any] | None) -> dict[str, Any]:
    if not proxy:
        return {}
    from nasbench.estimate import proxy_validity_line

    synthetic = " (SYNTHETIC data)" if proxy.get("synthetic") else ""
    return {"objective_label": f"proxy top-1 % on {proxy.get('data')}{synthetic}",
            "objective_validity": {"line": proxy_validity_line(proxy)}}


# Attributes that must agree when a study is resumed; anything else may change.
RESUME_KEYS = ("target", "budget_ms", "max_params", "max_macs", "imgsz", "det_imgsz", "device", "objective",
               "estimator", "backend")
LEGACY_OBJECTIVES = {"proxy_top1": "proxy"}  # studies written before --objective existed


def check_resume(study: optuna.Study, attrs: dict[str, Any]) -> None:
    old = dict(study.user_attrs)
    if "objective" in old:  # absent while a worker that created the study is still writing its attrs
        old["objective"] = LEGACY_OBJECTIVES.get(old["objective"], old["objective"])
        old.setdefault("backend", "eager")  # studies written before --backend existed were timed in eager
    for k in RESUME_KEYS:
        if k in old and old[k] != attrs[k]:
            raise UserError(f"study '{study.study_name}' was created with {k}={old[k]!r}, this run has {attrs[k]!r}; "
                            "use another --study name (nothing was changed)")
    old_proxy, new_proxy = old.get("proxy"), attrs.get("proxy")
    if old_proxy and new_proxy:
        for k in ("data", "steps", "imgsz", "batch"):
            if old_proxy.get(k) != new_proxy.get(k):
                raise UserError(f"study '{study.study_name}' was trained with proxy {k}={old_proxy.get(k)!r}, this run "
                                f"has {new_proxy.get(k)!r}: its top-1 values would not be comparable; "
                                "use another --study")


# ----------------------------------------------------------------------------- what --trials counts
SKIPPED_PER_TIMED_MAX = 3  # a run asks the sampler for at most (1 + this) x --trials candidates


def timed_now(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished trial cost a build and a timing, which is what --trials counts.
    A candidate skipped untimed (predicted over budget, against the space's constraints or
    a --max-params/--max-macs cap) or a repeat of an earlier config costs no timing (at most
    an estimate's seconds): it is recorded, with its reason, but does not use up the run's
    trials. A failed build counts."""
    if trial.state == TrialState.FAIL:
        return True
    return "row" in trial.user_attrs and "duplicate_of" not in trial.user_attrs


def asked_limit(trials: int) -> int:
    """The most candidates a run of ``trials`` timed trials asks for, so that a run whose
    latency model rejects nearly everything still ends."""
    return trials * (1 + SKIPPED_PER_TIMED_MAX)


class StopAfterTimed:
    """Optuna callback: stop the run once ``trials`` of its trials were timed (``timed_now``);
    with ``every_trial`` (the rule of --max-total) each finished trial counts."""

    def __init__(self, trials: int, every_trial: bool = False) -> None:
        self.trials, self.every_trial, self.timed, self.skipped = trials, every_trial, 0, 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.every_trial or timed_now(trial):
            self.timed += 1
        else:
            self.skipped += 1
        if self.timed >= self.trials:
            study.stop()


def feasible_count(study: optuna.Study) -> int:
    """Distinct feasible candidates (a repeat of a feasible config is not another one)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.user_attrs.get("feasible") and "duplicate_of" not in t.user_attrs)


def preset_trials(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    """Completed start trials that reproduce a named preset exactly, by preset name."""
    return {t.user_attrs["preset"]: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("preset_exact") and "row" in t.user_attrs}


def measure_presets(search: Search, names: list[str], log: Callable[[str], None],
                    study: optuna.Study | None = None) -> list[dict[str, Any]]:
    """The named presets, measured exactly like trials (same device, timing, proxy). A preset
    the study already ran as an exact start trial is not measured again, nor one in the
    cross-study cache of the same settings."""
    from_trials = preset_trials(study) if study is not None else {}
    rows = []
    for name in names:
        spec = zoo.resolve(name)
        space = next(s for s in search.spaces.values() if s.family.name == spec.family)
        imgsz = search.imgsz_for(space)
        trial = from_trials.get(name)
        if trial is not None:
            row = preset_row_from_trial(trial, name)
        else:
            log(f"measuring preset {name}")
            try:
                row, _, _ = search.measure_reusing(spec, name, imgsz)
            except MeasureError as exc:  # one preset's bad timing must not cost the study its report
                log(f"preset {name} not measured: {first_line(exc)}")
                rows.append({"name": name, "family": spec.family, "feasible": False, "reason": first_line(exc)})
                continue
        if search.opts.train and "proxy_top1" not in row:  # an infeasible start trial was never trained
            log(f"proxy-training preset {name}")
            result = search.train(spec)
            row.update(proxy_top1=result.top1, proxy_top5=result.top5, proxy_val_loss=result.val_loss)
        if search.opts.objective == "estimate" and "est_value" not in row:
            log(f"estimating preset {name}")
            row.update(search.estimate(spec, imgsz))
        row["feasible"] = max(search.constraint(row).values()) <= 0
        published = spec.family and zoo.all_families()[spec.family].published.get(name)
        if published:
            row["published_top1"] = published.top1
        rows.append(row)
    return rows


def preset_row_from_trial(trial: optuna.trial.FrozenTrial, name: str) -> dict[str, Any]:
    """A preset's reference row from the start trial that measured it (and its objective)."""
    row = {**trial.user_attrs["row"], "name": name, "from_trial": trial.number}
    for key in ("proxy_top1", "proxy_top5", "proxy_val_loss", *ESTIMATE_ATTRS):
        if key in trial.user_attrs:
            row[key] = trial.user_attrs[key]
    return row


def detector_references(search: Search, study: optuna.Study, log: Callable[[str], None]) -> None:
    """The rtdetr_l baseline row and the detector columns of the Pareto set, timed together
    in one alternating run on the search's device (stored as study attributes)."""
    from nasbench.detector.measure import BASELINE, DetectorOptions, measure_detectors
    from nasbench.report.study import load_study_data

    front = load_study_data(study, importances=False).pareto
    configs = {int(t.number): t.user_attrs["config"] for t in study.get_trials(deepcopy=False)
               if t.number in set(int(n) for n in front["trial"])}
    specs = {f"t{n:04d}": zoo.spec_from_mapping(dict(c), f"t{n:04d}") for n, c in configs.items()}
    log(f"timing RT-DETR with {len(specs)} Pareto backbone(s) and the rtdetr_l baseline at {search.opts.det_imgsz} px")
    result = measure_detectors(specs, DetectorOptions(imgsz=search.opts.det_imgsz, device=search.device,
                                                      dtype=search.opts.dtype), log)
    baseline = {"name": BASELINE, "family": "rtdetr", **result.rows[result.baseline_label]}
    study.set_user_attr("baseline", baseline)
    study.set_user_attr("pareto_detector", {str(n): result.rows[f"t{n:04d}"] for n in configs})
