"""Search efficiency, cost-only: does a strategy earn its trials against random sampling?

For each space and budget, every strategy runs the same number of cost-only trials
(objective: MACs under the latency budget, timed on this CPU) with the same seeds; the
strategies of one seed run one after the other, so the machine's drift is shared. Columns:
hypervolume of the feasible (latency down, MACs up) front against random's, the share of
trials that were feasible, the best feasible MACs against the best feasible named preset
(the presets' own configs, measured the same way), the latency model's error on the
trials it predicted before they were timed, and wall time. Measurements of presets go
through the cross-study cache (a fresh one per invocation), as in a real search.

    python benchmarks/search_efficiency.py --trials 30 --seeds 0 1 2 \\
        --out benchmarks/results/search_efficiency_cpu.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from nasbench.metrics.latency import device_name
from nasbench.nas import samplers
from nasbench.nas import study as st
from nasbench.nas.budget import parse_budget_ms
from nasbench.nas.space import KNOB_ENCODING, resolve_space_arg
from nasbench.nas.start import MAX_AIM_ROUNDS, enqueue_presets, start_limit
from report_out import emit  # benchmarks/ is on sys.path when a script runs
from search_overhead import hypervolume

SETTINGS = (("mobilevit", "20ms"), ("mobilevit", "30ms"), ("efficientvit", "15ms"), ("efficientvit", "25ms"),
            ("all", "15ms"), ("all", "30ms"))


@dataclass(frozen=True)
class Strategy:
    key: str  # for --strategies
    name: str
    sampler: str
    start: str
    predict_latency: bool
    two_objective: bool  # (MACs up, latency down), as the search now does; False: MACs alone, as before
    startup_trials: int = samplers.STARTUP_TRIALS  # trials TPE/GP sample at random, enqueued starts included
    knob_encoding: str = KNOB_ENCODING  # "value": numeric choices as categoricals, as studies were asked before
    aim_rounds: int = MAX_AIM_ROUNDS  # 0: no aimed versions; 1: aimed in proportion to MACs only (before)
    estimate_infeasible: bool = True  # False: an infeasible trial's objective value is its MACs (before)
    complete_predicted: bool = True  # False: a trial predicted over budget is pruned, unseen by GPSampler (before)


@dataclass(frozen=True)
class ObjectiveView:
    """How the tables read one search objective: the trial value, its label and unit, and the
    hypervolume's reference value."""

    name: str  # SearchOptions.objective
    key: str  # in a measured row or a trial's attributes
    label: str
    unit: float  # values are divided by this in the tables and the hypervolume
    ref: float  # the hypervolume counts values above this


OBJECTIVES = {"macs": ObjectiveView("macs", "macs", "GMACs", 1e9, 0.0),
              # estimated top-1 above 50 %: the lowest estimate of a published preset is 66.9 % (efficientvit_m0)
              "estimate": ObjectiveView("estimate", "est_top1", "est. top-1 %", 1.0, 50.0)}


STRATEGIES = (Strategy("random", "random", "random", "sampler", False, False),
              Strategy("before", "tpe, MACs alone, no start or model (before)", "tpe", "sampler", False, False),
              Strategy("default", "auto sampler two-objective + presets + latency model (default)", "auto",
                       "presets", True, True),
              Strategy("default-noaim", "the default without the presets' aimed versions", "auto", "presets", True,
                       True, aim_rounds=0),
              Strategy("default-oneaim", "the default with one aim per preset, in proportion to MACs", "auto",
                       "presets", True, True, aim_rounds=1),
              Strategy("default-macsinfeasible", "the default with an infeasible trial's MACs as its objective value",
                       "auto", "presets", True, True, estimate_infeasible=False),
              Strategy("default-prunedpredicted", "the default with a trial predicted over budget pruned", "auto",
                       "presets", True, True, complete_predicted=False))
# Candidates for the default, one change at a time (--sampler-study).
SAMPLER_STUDY = (Strategy("random", "random", "random", "sampler", False, False),
                 Strategy("tpe1", "tpe, MACs alone + presets + latency model", "tpe", "presets", True, False),
                 Strategy("tpe-nomodel", "tpe two-objective, sampler start, no latency model", "tpe", "sampler", False,
                          True),
                 Strategy("nsga2", "nsga2 two-objective + presets + latency model", "nsga2", "presets", True, True),
                 Strategy("tpe", "tpe two-objective + presets + latency model", "tpe", "presets", True, True),
                 Strategy("tpe-s10", "tpe two-objective + presets + latency model, 10 start-up trials", "tpe",
                          "presets", True, True, startup_trials=10),
                 Strategy("gp", "gp two-objective + presets + latency model", "gp", "presets", True, True),
                 Strategy("gp-value", "gp two-objective + presets + latency model, numeric choices as categoricals",
                          "gp", "presets", True, True, knob_encoding="value"),
                 Strategy("tpe-value", "tpe two-objective + presets + latency model, numeric choices as categoricals",
                          "tpe", "presets", True, True, knob_encoding="value"))


@dataclass(frozen=True)
class Outcome:
    hypervolume: float
    feasible: int
    trials: int
    best: float  # the best feasible objective value
    predicted_over: int
    model_error: float | None
    wall_s: float
    front: tuple[tuple[float, float], ...] = ()  # (latency ms, objective value) of the feasible trials


def trial_value(trial: optuna.trial.FrozenTrial, view: ObjectiveView) -> float:
    return trial.user_attrs["row"]["macs"] if view.name == "macs" else trial.user_attrs[view.key]


def run(space_arg: str, strategy: Strategy, seed: int, trials: int, budget_ms: float, storage: str,
        view: ObjectiveView = OBJECTIVES["macs"]) -> Outcome:
    spaces = resolve_space_arg(space_arg)
    opts = st.SearchOptions(budget_ms=budget_ms, device="cpu", objective=view.name, sampler=strategy.sampler,
                            start=strategy.start, predict_latency=strategy.predict_latency, seed=seed)
    search = st.Search(spaces, opts)
    search.knob_encoding = strategy.knob_encoding
    search.max_aim_rounds = strategy.aim_rounds
    search.estimate_infeasible = strategy.estimate_infeasible
    search.complete_predicted = strategy.complete_predicted
    study = optuna.create_study(study_name=f"{space_arg}-{budget_ms}-{strategy.name}-{seed}", storage=storage,
                                directions=st.study_directions(view.name) if strategy.two_objective else ["maximize"],
                                sampler=samplers.make_sampler(strategy.sampler, seed, strategy.startup_trials,
                                                              n_spaces=len(spaces)))
    started = time.perf_counter()
    if strategy.start == "presets":
        enqueue_presets(study, spaces, start_limit(trials, len(spaces)), strategy.knob_encoding)
    counter = st.StopAfterTimed(trials)  # as `nasbench search --trials`: timed candidates are counted
    study.optimize(search, n_trials=st.asked_limit(trials), callbacks=[counter], catch=(RuntimeError,))
    wall = time.perf_counter() - started
    done = [t for t in study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    front = [(t.user_attrs["row"]["latency_ms"], trial_value(t, view)) for t in done if t.user_attrs["feasible"]]
    errors = [t.user_attrs["pred_latency_error"] for t in study.trials if "pred_latency_error" in t.user_attrs]
    feasible = sum(1 for t in study.trials if t.user_attrs.get("feasible") and t.state.name == "COMPLETE"
                   and st.timed_now(t))
    return Outcome(hypervolume(front, budget_ms, view.ref, view.unit), feasible, counter.timed,
                   max((v for _, v in front), default=view.ref),
                   sum(1 for t in study.trials if t.user_attrs.get("predicted_over")),
                   statistics.median(errors) if errors else None, wall, tuple(front))


def best_preset(space_arg: str, budget_ms: float, view: ObjectiveView) -> tuple[float, str]:
    """The best feasible named preset (its own config, measured like a trial)."""
    spaces = resolve_space_arg(space_arg)
    search = st.Search(spaces, st.SearchOptions(budget_ms=budget_ms, device="cpu", objective=view.name))
    rows = st.measure_presets(search, [p for s in spaces for p in s.presets], log=lambda s: None)
    feasible = [r for r in rows if r["feasible"]]
    best = max(feasible, key=lambda r: r[view.key], default=None)
    return (best[view.key], best["name"]) if best else (view.ref, "none")


def setting_lines(space_arg: str, budget: str, seeds: list[int], trials: int, storage: str,
                  strategies: tuple[Strategy, ...], view: ObjectiveView) -> tuple[list[str], dict]:
    budget_ms = parse_budget_ms(budget)
    preset_value, preset_name = best_preset(space_arg, budget_ms, view)
    outcomes: dict[str, list[Outcome]] = {s.name: [] for s in strategies}
    for seed in seeds:
        for strategy in strategies:
            outcomes[strategy.name].append(run(space_arg, strategy, seed, trials, budget_ms, storage, view))
            print(space_arg, budget, seed, strategy.name, outcomes[strategy.name][-1], flush=True)
    random_hv = statistics.fmean(o.hypervolume for o in outcomes["random"])
    lines = []
    for strategy in strategies:
        runs = outcomes[strategy.name]
        hv = statistics.fmean(o.hypervolume for o in runs)
        errors = [o.model_error for o in runs if o.model_error is not None]
        best = statistics.fmean(o.best for o in runs)
        lines.append(
            f"| {space_arg} | {budget} | {strategy.name} | {hv:.2f} | {hv / max(random_hv, 1e-9):.2f} "
            f"| {sum(o.feasible for o in runs)}/{sum(o.trials for o in runs)} "
            f"({100 * sum(o.feasible for o in runs) / max(sum(o.trials for o in runs), 1):.0f}%) "
            f"| {best / view.unit:.3f} | {min(o.best for o in runs) / view.unit:.3f} "
            f"| {preset_name} {preset_value / view.unit:.3f} | {sum(o.predicted_over for o in runs)} "
            f"| {'—' if not errors else f'{100 * statistics.median(errors):.0f}%'} "
            f"| {statistics.fmean(o.wall_s for o in runs):.0f} |")
    # What all these runs found together: an empirical ceiling for one run's ratio in this setting.
    pooled = hypervolume([point for runs in outcomes.values() for o in runs for point in o.front], budget_ms,
                         view.ref, view.unit)
    lines.append(f"| {space_arg} | {budget} | every run above, fronts pooled | {pooled:.2f} "
                 f"| {pooled / max(random_hv, 1e-9):.2f} |" + " — |" * 7)
    return lines, {s.name: statistics.fmean(o.hypervolume for o in outcomes[s.name]) / max(random_hv, 1e-9)
                   for s in strategies}


def header_lines(args: argparse.Namespace, view: ObjectiveView) -> list[str]:
    cost_only = view.name == "macs"
    what = ("MACs under the latency budget (cost-only, no training)" if cost_only else
            "the default estimator's estimated ImageNet top-1 under the latency budget (an infeasible trial is "
            "estimated too, as the search does, or given its MACs under `default-macsinfeasible`)")
    reference = "(budget, 0)" if cost_only else f"(budget, {view.ref:g} %)"
    return [
        f"# Search efficiency{', cost-only' if cost_only else ', estimate objective'}: strategies against random "
        "sampling\n",
        f"Command: `python benchmarks/search_efficiency.py --trials {args.trials} --seeds "
        f"{' '.join(map(str, args.seeds))}{' --sampler-study' if args.sampler_study else ''}"
        f"{' --only ' + ' '.join(args.only) if args.only else ''}"
        f"{' --strategies ' + ' '.join(args.strategies) if args.strategies else ''}"
        f"{'' if cost_only else ' --objective ' + view.name}`. "
        f"CPU: {device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, optuna {optuna.__version__}. Objective: {what}; each trial = sample + build + "
        "count + CPU timing (3 warm-up + 15 runs). "
        f"Hypervolume: area of the feasible (latency <= budget, {view.label}) front in ms x {view.label}, reference "
        f"{reference}, mean over seeds; the ratio is against random's mean. Trials: candidates built and timed, as "
        "`--trials` counts them (those skipped untimed, predicted over budget or against the space's constraints, "
        "and repeats, are recorded beside them, not counted). Feasible: timed trials within the budget. "
        f"Best: mean (and worst seed) of the best feasible {view.label}; the best feasible preset is the named preset "
        f"with the most {view.label} within the budget, its own config measured the same way. Model error: median "
        "|predicted - measured| / measured over trials the latency model predicted before they were timed. "
        "'before' is the previous search with today's sampler settings "
        f"(TPE, {samplers.STARTUP_TRIALS} start-up trials): one objective, no presets first, no latency model.\n",
        f"| space | budget | strategy | hypervolume | vs random | feasible trials | best {view.label} (mean) "
        f"| best {view.label} (worst seed) | best feasible preset {view.label} | predicted over (never timed) "
        "| model error | wall s / run |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", default=None, help="space:budget settings to run (default: all six)")
    ap.add_argument("--sampler-study", action="store_true",
                    help="compare candidate samplers (same start and latency model) instead of the strategies")
    ap.add_argument("--strategies", nargs="+", default=None,
                    help="keys of the strategies to run (random is always run: the ratios are against it)")
    ap.add_argument("--objective", choices=sorted(OBJECTIVES), default="macs",
                    help="what the searches maximise: MACs (cost-only, the default) or the default estimator")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    strategies = SAMPLER_STUDY if args.sampler_study else STRATEGIES
    if args.strategies:
        strategies = tuple(s for s in strategies if s.key == "random" or s.key in args.strategies)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = [tuple(s.split(":")) for s in args.only] if args.only else SETTINGS
    started = time.perf_counter()
    view = OBJECTIVES[args.objective]
    lines = header_lines(args, view)
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NASBENCH_CACHE_DIR"] = tmp  # a cold cross-study cache for this invocation
        storage = f"sqlite:///{tmp}/bench.db"
        for space_arg, budget in settings:
            rows, ratio = setting_lines(space_arg, budget, args.seeds, args.trials, storage, strategies, view)
            lines += rows
            ratios[(space_arg, budget)] = ratio
    worst = {s.name: min(r[s.name] for r in ratios.values()) for s in strategies}
    lines.append("\nWorst setting's hypervolume vs random, per strategy (goal for the default: >= 1.2x in every "
                 "setting): " + "; ".join(f"{name} {ratio:.2f}x" for name, ratio in worst.items())
                 + f". Wall time of this benchmark: {(time.perf_counter() - started) / 60:.0f} min.")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
