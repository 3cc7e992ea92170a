"""`nasbench search` and `nasbench export`: thin CLI over ``nasbench.nas.study``."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from optuna.trial import TrialState

from nasbench.console import stderr_console, stdout_console, styled
from nasbench.errors import UserError
from nasbench.nas.budget import BUDGET_FORMS, parse_budget_ms, parse_count
from nasbench.nas.samplers import GP_MAX_TRIALS, SAMPLERS, auto_choice, make_sampler
from nasbench.nas.space import available_spaces
from nasbench.nas.start import enqueue_presets, start_limit
from nasbench.nas.study import OBJECTIVES, PRUNERS, STARTS, UNSTABLE, SearchOptions
from nasbench.nas.workers import CappedObjective, joining_seed, optimize_until_total, quiet_optuna, worker_id
from nasbench.options import BACKEND_HELP, BACKENDS, FiniteFloat
from nasbench.report.files import DEFAULT_REPORTS, atomic_write_text, ensure_writable_dir, shown_path
from nasbench.report.study import report_dirname
from nasbench.storage import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_STORAGE,
    GRACE_HEARTBEATS,
    make_storage,
    mask_url,
    open_study,
    storage_error_line,
    storage_loss_as_error,
    storage_scheme,
    storage_url_problem,
)

STUDY_META_KEY = "nasbench.study_name"


def open_or_create_study(name: str, storage_url: str, sampler_for: Callable[[int], Any], seed: int, pruner=None,
                         directions: tuple[str, ...] = ("maximize",), heartbeat_s: int = DEFAULT_HEARTBEAT_S):
    """Create the study (sampler seeded with ``seed``) or join/resume it; returns (study, sampler seed).

    A worker joining an existing study gets its own sampler seed: workers started with
    the same --seed would otherwise propose the very same start-up configs.
    """
    problem = storage_url_problem(storage_url)
    if problem:
        raise UserError(f"cannot open storage {mask_url(storage_url)}: {problem}")
    new_file = None  # a database file this call creates: removed again if it stays empty (a full disk)
    for prefix, what in (("sqlite:///", "study directory"), ("journal:", "journal directory")):
        if storage_url.startswith(prefix):
            path = Path(storage_url[len(prefix):])
            ensure_writable_dir(path.parent if str(path.parent) else Path("."), what)
            new_file = None if path.exists() else path
    try:
        return _create_or_load(name, storage_url, sampler_for, seed, pruner, directions, heartbeat_s)
    except BaseException:
        if new_file is not None and new_file.is_file() and new_file.stat().st_size == 0:
            new_file.unlink()
        raise


def _create_or_load(name: str, storage_url: str, sampler_for: Callable[[int], Any], seed: int, pruner,
                    directions: tuple[str, ...], heartbeat_s: int):
    import optuna

    try:
        storage = make_storage(storage_url, heartbeat_s)
        try:
            return optuna.create_study(study_name=name, storage=storage, sampler=sampler_for(seed), pruner=pruner,
                                       directions=list(directions)), seed
        except optuna.exceptions.DuplicatedStudyError:
            seed = joining_seed(seed)
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler_for(seed), pruner=pruner), seed
    except ImportError:
        raise UserError(f"no database driver for {mask_url(storage_url)}: for PostgreSQL pip install "
                        "'nasbench[postgres]' (psycopg), for other databases their SQLAlchemy driver") from None
    except Exception as exc:  # noqa: BLE001 - drivers raise many kinds
        why = storage_error_line(exc, storage_url)
        raise UserError(f"cannot open storage {mask_url(storage_url)}: {why}") from None


class _Progress:
    """Optuna callback driving a rich progress bar: trials, feasible, best, ETA."""

    def __init__(self, progress, task, objective: str, counter) -> None:
        self.progress, self.task, self.objective, self.counter = progress, task, objective, counter
        self.feasible = 0
        self.best: float | None = None

    def __call__(self, study, trial) -> None:
        if trial.user_attrs.get("feasible") and trial.values and trial.state.name == "COMPLETE":
            self.feasible += 1
            value = trial.values[0]  # the objective (a second value, when there is one, is latency)
            self.best = value if self.best is None else max(self.best, value)
        best = "—" if self.best is None else (f"{self.best / 1e9:.3f} GMACs" if self.objective == "macs"
                                              else f"{self.best:.4g}")
        skipped = f" · {self.counter.skipped} skipped untimed" if self.counter.skipped else ""
        self.progress.update(self.task, completed=self.counter.timed,
                             description=f"trial {trial.number} {trial.state.name.lower()} "
                                         f"· feasible {self.feasible}{skipped} · best {best}")


def _sigterm_as_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


@click.command("search")
@click.option("--space", "space_arg", required=True,
              help=f"Space name ({', '.join(available_spaces())}), 'all' (family becomes a knob), "
                   "or a space .yaml file.")
@click.option("--budget", required=True, help=f"Latency budget, hard constraint. Accepted: {BUDGET_FORMS}.")
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True,
              help="Candidates this run builds and times (those skipped untimed are recorded beside them).")
@click.option("--max-total", type=click.IntRange(min=1), default=None,
              help="Exactly this many finished trials in the study, all workers together (this worker stops "
                   "earlier at --trials).")
@click.option("--timeout", type=FiniteFloat(min=1), default=None,
              help="Stop starting trials after this many seconds.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N (what latency is measured on).")
@click.option("--target", type=click.Choice(["backbone", "detector"]), default="backbone", show_default=True,
              help="What the budget constrains: the backbone at --imgsz, or RT-DETR with it at --det-imgsz.")
@click.option("--imgsz", type=click.IntRange(min=16), default=None, help="Backbone input px [default: the space's].")
@click.option("--det-imgsz", type=click.IntRange(min=64), default=640, show_default=True)
@click.option("--data", default=None,
              help="Proxy data: ImageFolder or CIFAR pickle dir [default: built-in synthetic task].")
@click.option("--proxy-steps", type=click.IntRange(min=1), default=120, show_default=True,
              help="Proxy training steps per trial.")
@click.option("--proxy-seconds", type=FiniteFloat(min=1), default=None,
              help="Also stop a proxy run at the first evaluation after this many seconds.")
@click.option("--proxy-imgsz", type=click.IntRange(min=8), default=32, show_default=True, help="Proxy training px.")
@click.option("--proxy-batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="How --objective proxy stops poor runs early: the median rule, or Hyperband (successive halving "
                   "over the training steps).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="estimate", show_default=True,
              help="What a feasible trial maximises: 'estimate' = estimated ImageNet top-1 from --estimator "
                   "(validated against published top-1, see `nasbench estimators`); 'proxy' = top-1 after short "
                   "training on --data (--proxy-* options); 'macs' = MACs under the budget (no training).")
@click.option("--estimator", default="default", show_default=True,
              help="Accuracy estimator for --objective estimate (`nasbench estimators` lists them).")
@click.option("--no-train", is_flag=True, help="Same as --objective macs (cost-only search).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="auto", show_default=True,
              help=f"'auto': GP (Optuna's GPSampler; TPE after {GP_MAX_TRIALS} trials) for a one-family space "
                   "searched by one worker, TPE for --space all or several workers (--max-total, or a storage "
                   "other than sqlite), as measured in benchmarks/results/search_efficiency_*.")
@click.option("--start", type=click.Choice(STARTS), default="presets", show_default=True,
              help="'presets': a new study's first trials are the space's named presets (projected onto its knobs), "
                   "each followed by a width-scaled version aimed at the budget; 'sampler': the sampler from trial 0.")
@click.option("--latency-model/--no-latency-model", default=True, show_default=True,
              help="Fit a latency model on the study's measured trials and skip timing candidates it predicts "
                   "over budget (recorded with the prediction; every 4th is timed anyway to check it).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-params", default=None, help="Extra cap, e.g. 5M.")
@click.option("--max-macs", default=None, help="Extra cap, e.g. 500M.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads torch uses while timing (recorded; restored afterwards).")
@click.option("--backend", type=click.Choice(BACKENDS), default="eager", show_default=True,
              help=BACKEND_HELP + " Stored with the study; resuming with another backend is refused.")
@click.option("--cuda-graph", is_flag=True,
              help="Also time each candidate replayed from a CUDA graph (--device cuda, --backend eager): a "
                   "latency_graph_ms column; the budget still judges the eager latency.")
@click.option("--unstable-timing", type=click.Choice(UNSTABLE), default="fail", show_default=True,
              envvar="NASBENCH_UNSTABLE_TIMING",
              help="A candidate timed while other processes used the CPU, or with a wide spread, is re-timed twice; "
                   "still unstable: 'fail' the trial (never judged against the budget) or 'accept' the last timing, "
                   "marked unstable in the trial and the report (several workers sharing one machine's cores). "
                   "Also read from $NASBENCH_UNSTABLE_TIMING (a shared CI runner).")
@click.option("--study", "study_name", default=None,
              help="Study name [default: derived from space, target, device, imgsz, budget: re-running resumes].")
@click.option("--storage", default=DEFAULT_STORAGE, show_default=True,
              help="Optuna storage: sqlite:///file.db, postgresql://user:pass@host/db, "
                   "or journal:PATH (many local workers).")
@click.option("--heartbeat", "heartbeat_s", type=click.IntRange(min=1), default=DEFAULT_HEARTBEAT_S, show_default=True,
              help=f"Seconds between a running trial's liveness stamps; a trial silent {GRACE_HEARTBEATS}x this long "
                   "(its worker died) is failed and its sample re-queued for the other workers.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: reports/<study>/].")
@click.option("--no-presets", is_flag=True,
              help="Skip the references: the named presets, and RT-DETR (rtdetr_l and the Pareto set) at --det-imgsz.")
def search(space_arg, budget, trials, max_total, timeout, device, target, imgsz, det_imgsz, data, proxy_steps,
           proxy_seconds, proxy_imgsz, proxy_batch, pruner, objective, estimator, no_train, sampler, start,
           latency_model, seed, max_params, max_macs, threads, backend, cuda_graph, unstable_timing,
           study_name, storage, heartbeat_s, out_dir, no_presets) -> None:
    """Search a family's knobs with Optuna under a latency budget.

    A new study starts at the space's named presets (and width-scaled versions aimed at
    the budget). Each trial: sample a config, count params/MACs on the meta device;
    predicted well over budget by the latency model fitted on the study's own timings ->
    recorded infeasible with the prediction, never timed; else build and time it on
    --device; over budget -> recorded infeasible, never trained; within budget -> the
    objective: an accuracy estimate (default, seconds per candidate), short proxy training
    (pruned early when clearly worse) or MACs. Estimate and MACs studies optimise the
    objective and latency together (the Pareto front). The same command resumes the
    same study; another --objective/--estimator for it is refused. At the end: the
    Pareto front (latency vs objective) beside the named presets, measured the same
    way, and a report under reports/.
    """

    from nasbench.nas import study as st
    from nasbench.nas.space import resolve_space_arg

    quiet_optuna()
    opts = _search_options(click.get_current_context().params)
    spaces = resolve_space_arg(space_arg)
    console = stdout_console()
    err = stderr_console()
    with err.status("preparing") as status:
        search_ = st.Search(spaces, opts, log=lambda s: status.update(s))
        name = study_name or st.default_study_name(spaces, space_arg, opts, search_.device.type)
        click.get_current_context().meta[STUDY_META_KEY] = name  # for nasbench.search() in Python
        out_dir = out_dir or DEFAULT_REPORTS / report_dirname(name)
        ensure_writable_dir(out_dir, "report directory")
        # loads the proxy data: bad --data fails before any study exists
        # --max-total, a server or a journal are for several workers; a sqlite file is for one
        one_worker = max_total is None and storage_scheme(storage) == "sqlite"
        sampler = SamplerPlan(opts.sampler, len(spaces), one_worker)
        study, sampler_seed = _open_study(name, storage, st.study_attrs(search_, space_arg, opts), opts, heartbeat_s,
                                          sampler)
        search_.use_study_encoding(study)
    with storage_loss_as_error(storage, heartbeat_s):
        earlier = study.get_trials(deepcopy=False)
        before, run_before = len(earlier), already_run(earlier)
        if opts.start == "presets":
            enqueue_presets(study, spaces, start_limit(max_total or trials, len(spaces)), search_.knob_encoding)
        _print_start(console, study, name, storage, before, f"{sampler.shown()}, seed {sampler_seed}", opts.train)
        interrupted = _run_trials(study, search_, err, TrialLimits(trials, max_total, timeout, heartbeat_s))
        if not interrupted and not no_presets:
            _measure_references(study, search_, spaces, err)
        _finish(study, name, storage, out_dir, run_before, console, every_trial=bool(max_total))
        if interrupted:
            err.print("interrupted: the running trial was recorded as failed (reason: interrupted); "
                      "the same command resumes")
            sys.exit(130)


def _search_options(p: dict[str, Any]) -> SearchOptions:
    """The command's options (click's parameter values by name) checked against each other
    and gathered into SearchOptions."""
    objective, no_train = p["objective"], p["no_train"]
    if no_train and objective not in ("estimate", "macs"):
        raise UserError(f"--no-train means --objective macs; it contradicts --objective {objective}")
    if p["data"] is not None and (no_train or objective != "proxy"):
        raise UserError("--data is the training data of --objective proxy; add --objective proxy to train on it, "
                        "or drop --data (the estimate objective needs no data)")
    if objective == "estimate" and not no_train:
        from nasbench.estimate import get_estimator

        get_estimator(p["estimator"])  # an unknown name fails before a study exists
    same = ("device", "target", "imgsz", "det_imgsz", "data", "proxy_steps", "proxy_seconds", "proxy_imgsz",
            "proxy_batch", "pruner", "estimator", "sampler", "start", "seed", "threads", "backend",
            "unstable_timing", "cuda_graph")
    return SearchOptions(
        budget_ms=parse_budget_ms(p["budget"]), objective="macs" if no_train else objective,
        predict_latency=p["latency_model"],
        max_params=parse_count(p["max_params"], "--max-params") if p["max_params"] else None,
        max_macs=parse_count(p["max_macs"], "--max-macs") if p["max_macs"] else None,
        **{k: p[k] for k in same},  # options whose SearchOptions field has the option's name
    )


@dataclass(frozen=True)
class SamplerPlan:
    """The --sampler choice with what ``auto`` depends on."""

    name: str
    n_spaces: int
    one_worker: bool

    def make(self, seed: int):
        return make_sampler(self.name, seed, n_spaces=self.n_spaces, one_worker=self.one_worker)

    def shown(self) -> str:
        if self.name != "auto":
            return f"sampler {self.name}"
        gp = auto_choice(self.n_spaces, self.one_worker) == "gp"
        picked = f"gp, tpe after {GP_MAX_TRIALS} trials" if gp else "tpe"
        return f"sampler auto ({picked})"


def _open_study(name: str, storage: str, attrs: dict, opts, heartbeat_s: float, sampler: SamplerPlan):
    """Create the study with its settings, or load it and refuse a resume with other settings."""
    from nasbench.nas import study as st

    study, sampler_seed = open_or_create_study(name, storage, sampler.make, opts.seed,
                                               st.make_pruner(opts.proxy_steps, opts.pruner),
                                               directions=tuple(st.study_directions(opts.objective)),
                                               heartbeat_s=heartbeat_s)
    if study.user_attrs:
        st.check_resume(study, attrs)
    else:
        for k, v in attrs.items():
            study.set_user_attr(k, v)
    return study, sampler_seed


def _print_start(console, study, name: str, storage: str, before: int, sampler: str, train: bool) -> None:
    console.print(styled("study ", (name, "bold"), f" in {mask_url(storage)}: {before} earlier trial(s)"
                         + (", resuming" if before else "") + f"; {sampler}"), highlight=False)
    if train and study.user_attrs.get("proxy", {}).get("synthetic"):
        console.print("proxy data: SYNTHETIC built-in task (ranks candidates; not an accuracy estimate)")
    validity = (study.user_attrs.get("objective_validity") or {}).get("line")
    if validity:
        console.print(f"objective: {validity}", highlight=False)


@dataclass(frozen=True)
class TrialLimits:
    trials: int  # this run's trials
    max_total: int | None  # the study's total over all workers (--max-total)
    timeout_s: float | None
    heartbeat_s: float


def _run_trials(study, search_, err, limits: TrialLimits) -> bool:
    """Run this process's trials with a progress bar; True when interrupted (Ctrl-C or SIGTERM).
    --trials counts timed trials (``study.timed_now``); with --max-total every finished trial counts."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from nasbench.nas import study as st

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=False) as progress:
            task = progress.add_task("searching", total=limits.trials)
            counter = st.StopAfterTimed(limits.trials, every_trial=bool(limits.max_total))
            search_.run_counter = counter
            callbacks = [counter, _Progress(progress, task, study.user_attrs.get("objective", "proxy_top1"), counter)]
            if limits.max_total:
                deadline = None if limits.timeout_s is None else started + limits.timeout_s
                optimize_until_total(study, CappedObjective(search_, limits.max_total), max_trials=limits.trials,
                                     deadline=deadline, callbacks=callbacks, catch=(RuntimeError,),
                                     poll_s=min(5.0, limits.heartbeat_s / 2),
                                     on_wait=lambda s: progress.update(task, description=s))
            else:
                study.optimize(search_, n_trials=st.asked_limit(limits.trials), timeout=limits.timeout_s,
                               callbacks=callbacks, catch=(RuntimeError,), gc_after_trial=False)
    except KeyboardInterrupt:
        return True
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        study.set_user_attr("wall_s", float(study.user_attrs.get("wall_s", 0.0)) + time.monotonic() - started)
    return False


def _measure_references(study, search_, spaces, err) -> None:
    """The named presets (once per study) and the detector references, measured like the trials."""
    from nasbench.nas import study as st

    if "presets" not in study.user_attrs:
        with err.status("measuring the named presets the same way") as status:
            names = [p for s in spaces for p in s.presets]
            study.set_user_attr("presets", st.measure_presets(search_, names, log=lambda s: status.update(s),
                                                                    study=study))
        for row in study.user_attrs["presets"]:
            if row.get("reason"):
                err.print(f"preset {row['name']} not measured: {row['reason']}", highlight=False, soft_wrap=True)
    with err.status("detector-level references") as status:
        st.detector_references(search_, study, log=lambda s: status.update(s))


def already_run(trials) -> frozenset[int]:
    """Numbers of the trials not waiting: a waiting one (a preset another worker enqueued) may
    still be run by this process, and then it is this run's."""
    return frozenset(t.number for t in trials if t.state != TrialState.WAITING)


def run_counts(trials, run_before: frozenset[int], worker: str, every_trial: bool) -> tuple[int, int, int]:
    """(counted, skipped, by others) among the trials run since this process started.
    Other workers add trials to the same study meanwhile, so only ``worker``'s own are
    this run's; a trial numbered before the start counts too when it was still waiting
    then (a preset another worker enqueued and this one ran)."""
    from nasbench.nas import study as st

    new = [t for t in trials if t.number not in run_before and t.state != TrialState.WAITING]
    mine = [t for t in new if t.user_attrs.get("worker") == worker]
    counted = sum(1 for t in mine if every_trial or st.timed_now(t))
    return counted, len(mine) - counted, len(new) - len(mine)


def _finish(study, name: str, storage: str, out_dir, run_before: frozenset[int], console, every_trial: bool) -> None:
    """The report, and what this process added to the study (``every_trial``: --max-total's count)."""
    from nasbench.nas import study as st
    from nasbench.report.command import render_study

    render_study(study, out_dir, mask_url(storage), console)
    counted, skipped_n, others = run_counts(study.get_trials(deepcopy=False), run_before, worker_id(), every_trial)
    skipped = f", {skipped_n} skipped untimed or repeated (recorded, not counted)" if skipped_n else ""
    console.print(f"{counted} trial(s) this run{skipped}" + (f" (+{others} by other workers)" if others > 0 else "")
                  + f", {st.feasible_count(study)} feasible in the study; "
                  f"re-run the same command to add trials. Export configs with `nasbench export {name}`.",
                  highlight=False)


@click.command("export")
@click.argument("study_name", metavar="STUDY")
@click.option("--trial", "trial_number", type=int, default=None, help="Export this trial's config.")
@click.option("--pareto", is_flag=True, help="Export every Pareto-front config (the default without --trial).")
@click.option("--storage", default=DEFAULT_STORAGE, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("configs"),
              show_default=True, help="Directory for the YAML files.")
def export(study_name, trial_number, pareto, storage, out_dir) -> None:
    """Write searched configs as YAML files that `compare` and `train` accept."""
    import yaml

    from nasbench.report.study import load_study_data

    quiet_optuna()
    study = open_study(study_name, storage)
    if trial_number is not None and pareto:
        raise UserError("use either --trial N or --pareto, not both")
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial_number is not None:
        if trial_number not in trials or "config" not in trials[trial_number].user_attrs:
            raise UserError(f"study '{study_name}' has no trial {trial_number} with a config "
                            f"(trials 0..{max(trials, default=-1)})")
        chosen = [trials[trial_number]]
    else:
        front = load_study_data(study, importances=False).pareto
        chosen = [trials[int(n)] for n in front["trial"]] if len(front) else []
        if not chosen:
            raise UserError(f"study '{study_name}' has no feasible completed trial yet: nothing to export")
    ensure_writable_dir(out_dir, "export directory")
    console = stdout_console()
    for t in chosen:
        config = dict(t.user_attrs["config"])
        name = f"{report_dirname(study_name)}-t{t.number:04d}"
        text = yaml.safe_dump({"name": name, **config}, sort_keys=False)
        path = atomic_write_text(out_dir / f"{name}.yaml", text)
        console.print(f"wrote {shown_path(path)}", highlight=False, soft_wrap=True)
