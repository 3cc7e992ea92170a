"""A nasbench search study -> result-row DataFrames (trials, Pareto front, presets, baseline).

The study layout is the contract written by ``nasbench search`` (see the search module):
study-level user attributes describe the run, each trial carries its config, its
result row (schema of ``nasbench.report.schema``), feasibility and proxy results.
Everything here is a pure function of the study, except ``open_study``, which reads a
storage and turns every way that can fail into one-line ``UserError``s.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nasbench.report.schema import KNOB_PREFIX, TERMINAL_COLUMNS

# Display columns: (column, header, scale, format), shared by the terminal table and the HTML.
_TERMINAL = {c[0]: c for c in TERMINAL_COLUMNS}
DISPLAY_COLUMNS: list[tuple[str, str, float, str]] = [
    ("trial", "#", 1, "{:d}"),
    _TERMINAL["name"],
    _TERMINAL["family"],
    ("state", "state", 1, "{}"),
    ("feasible", "feasible", 1, "{}"),
    ("proxy_top1", "proxy top-1 %", 1, "{:.2f}"),
    _TERMINAL["est_top1"],
    _TERMINAL["est_score"],
    _TERMINAL["published_top1"],
    _TERMINAL["latency_ms"],
    _TERMINAL["latency_p10_ms"],
    _TERMINAL["latency_p90_ms"],
    _TERMINAL["params"],
    _TERMINAL["macs"],
    _TERMINAL["flops"],
    ("det_params", "det params M", 1e-6, "{:.2f}"),
    ("det_macs", "det MACs G", 1e-9, "{:.2f}"),
    ("det_latency_ms", "det latency ms", 1, "{:.1f}"),
    ("duplicate_of", "dup of #", 1, "{:d}"),
    ("duration_s", "trial s", 1, "{:.1f}"),
    ("reason", "reason", 1, "{}"),
]

_ROW_ORDER = ["trial", "name", "family", "state", "feasible", "pareto", "value", "est_top1", "est_score",
              "published_top1", "proxy_top1", "proxy_top5",
              "proxy_val_loss", "latency_ms", "latency_p10_ms", "latency_p90_ms", "params", "macs", "flops",
              "det_params", "det_macs", "det_flops", "det_latency_ms"]
CORE_COLUMNS = ("trial", "name", "family", "state", "feasible", "value", "proxy_top1", "latency_ms", "params",
                "macs", "flops", "duplicate_of", "reason")
_NUMERIC_CORE = ("trial", "value", "proxy_top1", "latency_ms", "params", "macs", "flops", "duplicate_of")
_INT_COLUMNS = ("trial", "params", "params_train_form", "macs", "flops", "macs_fvcore", "macs_thop", "det_params",
                "det_macs", "det_flops", "duplicate_of", "aim_round", "imgsz", "batch", "threads", "latency_runs")
QUEUED_LABEL = "queued (runs first when the study resumes)"  # WAITING trials, in the summary and the report
_STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
MIN_TRIALS_FOR_IMPORTANCE = 10


# ----------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class Importances:
    """Knob importances for the objective and for latency, or why there are none."""

    evaluator: str
    objective: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class StudyData:
    """Everything a study report shows, as plain data."""

    name: str
    attrs: dict[str, Any]
    trials: pd.DataFrame
    pareto: pd.DataFrame
    presets: pd.DataFrame
    baseline: pd.DataFrame  # zero or one row
    configs: dict[int, dict[str, Any]]  # trial number -> config mapping
    importances: Importances
    counts: dict[str, int]


def _plain(value: Any) -> Any:
    """A knob value for a CSV cell: scalars stay, lists/dicts become JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    ua = trial.user_attrs
    measured = ua.get("row") or {}
    config = ua.get("config") or {}
    row: dict[str, Any] = {"trial": trial.number,
                           "name": ua.get("name") or measured.get("name") or f"t{trial.number:04d}",
                           "family": config.get("family") or measured.get("family")}
    row["state"] = _STATE_NAMES.get(trial.state, trial.state.name.lower())
    row["feasible"] = bool(ua.get("feasible", False))
    # the objective; a two-objective study's second value is the latency, already in the row
    row["value"] = trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else None
    for key in ("proxy_top1", "proxy_top5", "proxy_val_loss", "proxy_images_per_s", "estimator", "est_top1",
                "est_score", "est_seconds", "est_value"):
        row[key] = ua.get(key)
    for key, value in measured.items():
        if key not in ("name", "family") and (value is not None or row.get(key) is None):
            row[key] = value
    if row.get("flops") is None and row.get("macs") is not None:
        row["flops"] = 2 * row["macs"]
    if row.get("det_flops") is None and row.get("det_macs") is not None:
        row["det_flops"] = 2 * row["det_macs"]
    row["duplicate_of"] = ua.get("duplicate_of")
    for key in ("start", "preset", "aimed_from", "aim_round", "pred_latency_ms", "pred_latency_error",
                "predicted_over_timed"):
        row[key] = ua.get(key)
    row["predicted_over"] = bool(ua.get("predicted_over")) and "row" not in ua  # skipped, never timed
    row["duration_s"] = trial.duration.total_seconds() if trial.duration is not None else None
    row["started_at"] = trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None
    row["reason"] = ua.get("reason")
    for knob, value in config.items():
        if knob != "family":
            row[KNOB_PREFIX + knob] = _plain(value)
    return row


def _order_and_type(frame: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in _ROW_ORDER if c in frame.columns]
    knobs = [c for c in frame.columns if c.startswith(KNOB_PREFIX)]
    rest = [c for c in frame.columns if c not in first and c not in knobs]
    frame = frame[first + rest + knobs]
    for col in _INT_COLUMNS:
        if col in frame.columns:
            numeric = pd.to_numeric(frame[col], errors="coerce").astype(float)
            if frame[col].notna().sum() == numeric.notna().sum() and (numeric.dropna() % 1 == 0).all():
                frame[col] = numeric.round().astype("Int64")
    for col in frame.columns:
        # Columns that are entirely numbers (with gaps) must be numeric, not object.
        if frame[col].dtype == object:
            non_null = frame[col].dropna()
            if len(non_null) and non_null.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
                frame[col] = pd.to_numeric(frame[col])
    return frame


def trials_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One result row per trial (all states), in trial order."""
    rows = [trial_row(t) for t in sorted(trials, key=lambda t: t.number)]
    frame = pd.DataFrame(rows)
    # Core columns exist even before anything was measured (a search that just started).
    for col in CORE_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series([None] * len(frame), dtype=float if col in _NUMERIC_CORE else object)
    frame["pareto"] = False
    return _order_and_type(frame)


def candidates_mask(trials: pd.DataFrame) -> pd.Series:
    """Completed, feasible, measured trials that are not a reuse of an earlier measurement."""
    mask = (trials["state"] == "complete") & trials["feasible"].astype(bool)
    for col in ("latency_ms", "value"):
        mask &= trials[col].notna() if col in trials.columns else False
    if "duplicate_of" in trials.columns:
        mask &= trials["duplicate_of"].isna()
    return mask


def pareto_numbers(trials: pd.DataFrame) -> list[int]:
    """Trial numbers on the front of (latency_ms lower is better, value higher is better)."""
    cand = trials[candidates_mask(trials)]
    if cand.empty:
        return []
    ordered = cand.assign(_v=cand["value"].astype(float), _l=cand["latency_ms"].astype(float))
    ordered = ordered.sort_values(["_l", "_v", "trial"], ascending=[True, False, True], kind="stable")
    front, best = [], -math.inf
    for number, value in zip(ordered["trial"], ordered["_v"]):
        if value > best:  # strictly better than every faster point: not dominated
            front.append(int(number))
            best = value
    return front


def rows_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    """Preset / baseline rows from study attributes -> frame in the same column order."""
    if not rows:
        return pd.DataFrame(columns=["name", "family", "latency_ms", "params", "macs", "flops"])
    frame = pd.DataFrame([dict(r) for r in rows])
    if "flops" not in frame.columns and "macs" in frame.columns:
        frame["flops"] = frame["macs"] * 2
    return _order_and_type(frame)


def trial_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials by outcome. One skipped as predicted over budget is counted as that alone,
    whether Optuna holds it as completed (now: so the sampler learns from it) or pruned (before)."""
    state = trials["state"] if len(trials) else pd.Series(dtype=object)
    predicted = trials["predicted_over"].fillna(False).astype(bool) if "predicted_over" in trials.columns \
        else pd.Series(False, index=trials.index)
    complete = (state == "complete") & ~predicted
    feasible = complete & (trials["feasible"].astype(bool) if len(trials) else False)
    dup = trials["duplicate_of"].notna() if "duplicate_of" in trials.columns else pd.Series(False, index=trials.index)
    # slot-race losers of a multi-worker --max-total: FAIL in Optuna, but nothing went wrong
    surplus = (state == "failed") & trials["reason"].fillna("").astype(str).str.startswith("surplus") \
        if "reason" in trials.columns else pd.Series(False, index=trials.index)
    return {
        "run": int(len(trials)), "complete": int(complete.sum()), "feasible": int(feasible.sum()),
        "infeasible": int((complete & ~feasible).sum()), "predicted_over": int(predicted.sum()),
        "pruned": int(((state == "pruned") & ~predicted).sum()),
        "failed": int((state == "failed").sum() - surplus.sum()), "surplus": int(surplus.sum()),
        "running": int((state == "running").sum()), "queued": int((state == "waiting").sum()),
        "duplicates": int(dup.sum()),
    }


def latency_model_line(trials: pd.DataFrame) -> str | None:
    """How the study's online latency model did: what it skipped, how often the skipped kind
    was really over (the every-k-th check), and its error on the candidates it predicted
    before they were timed (None when it never predicted)."""
    if "pred_latency_ms" not in trials.columns or not trials["pred_latency_ms"].notna().any():
        return None
    skipped = int(trials["predicted_over"].fillna(False).astype(bool).sum())
    line = f"latency model: {skipped} candidate(s) predicted over budget and never timed"
    timed_anyway = trials["latency_ms"].where(trials["predicted_over_timed"].fillna(False).astype(bool)) \
        if "predicted_over_timed" in trials.columns else pd.Series(dtype=float)
    checks = timed_anyway.dropna()
    if len(checks):
        really = int((~trials.loc[checks.index, "feasible"].astype(bool)).sum())
        line += f"; of {len(checks)} such timed anyway to check, {really} turned out infeasible"
    errors = pd.to_numeric(trials.get("pred_latency_error"), errors="coerce").dropna()
    if len(errors):
        line += (f"; median error on the {len(errors)} predicted before timing {100 * errors.median():.0f}% "
                 f"(p90 {100 * errors.quantile(0.9):.0f}%)")
    return line


def objective_name(attrs: dict[str, Any]) -> str:
    """"estimate" | "proxy" | "macs" (studies written before --objective said "proxy_top1")."""
    name = str(attrs.get("objective") or ("proxy" if attrs.get("proxy") else "macs"))
    return "proxy" if name == "proxy_top1" else name


def knob_importances(study: optuna.Study, trials: pd.DataFrame) -> Importances:
    """PED-ANOVA importances (Optuna) of the sampled knobs for the objective and for latency.

    PED-ANOVA needs only numpy (Optuna's fANOVA evaluator needs scikit-learn, which
    nasbench does not depend on) and is deterministic. Objective importances use the
    feasible, completed, non-duplicate trials; latency importances use every completed
    trial that was timed (infeasible ones included: they say what makes a model slow).
    """
    evaluator_name = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
    numbers = trials["trial"].astype(int)
    usable = set(numbers[candidates_mask(trials)])
    values = dict(zip(numbers, trials["value"]))
    latency = dict(zip(numbers, trials["latency_ms"])) if "latency_ms" in trials.columns else {}
    timed_mask = (trials["state"] == "complete") & trials["duplicate_of"].isna()
    timed = set(numbers[timed_mask & trials["latency_ms"].notna()]) if latency else set()
    if not any(t.params for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))):
        return Importances(evaluator_name, note="the trials record no sampled knobs (trial.params is empty)")

    def objective_target(t: FrozenTrial) -> float:  # PED-ANOVA treats lower as better
        return -float(values[t.number]) if t.number in usable else math.nan

    def latency_target(t: FrozenTrial) -> float:
        return float(latency[t.number]) if t.number in timed else math.nan

    def evaluate(target: Callable[[FrozenTrial], float], n: int, what: str) -> tuple[dict[str, float], str]:
        if n < MIN_TRIALS_FOR_IMPORTANCE:
            return {}, (f"Not enough trials for {what} importances yet: they need at least "
                        f"{MIN_TRIALS_FOR_IMPORTANCE} {'feasible completed' if what != 'latency' else 'timed'} "
                        f"trials, this study has {n}.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target, normalize=True)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            return {}, f"Optuna could not evaluate {what} importances ({str(exc).splitlines()[0][:160]})."
        if not result or all(v == 0 or not math.isfinite(v) for v in result.values()):
            return {}, f"No knob separates the best trials from the rest for {what} yet."
        return dict(result), ""

    obj, obj_note = evaluate(objective_target, len(usable), "objective")
    lat, lat_note = evaluate(latency_target, len(timed), "latency")
    return Importances(evaluator_name, obj, lat, " ".join(n for n in (obj_note, lat_note) if n))


def load_study_data(study: optuna.Study, *, importances: bool = True) -> StudyData:
    """Read a study once and derive every frame the report shows."""
    raw = study.get_trials(deepcopy=False)
    attrs = dict(study.user_attrs)
    trials = trials_frame(raw)
    for number, det in (attrs.get("pareto_detector") or {}).items():  # measured after the search
        for key, value in det.items():
            if key.startswith("det_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                if key not in trials.columns:
                    trials[key] = pd.Series([None] * len(trials), dtype=float)
                trials.loc[trials["trial"] == int(number), key] = value
    front = pareto_numbers(trials) if len(trials) else []
    if len(trials):
        trials["pareto"] = trials["trial"].isin(front).to_numpy(dtype=bool)
    pareto = trials[trials["pareto"]].sort_values("latency_ms", kind="stable").reset_index(drop=True) \
        if len(trials) else trials.copy()
    configs = {t.number: dict(t.user_attrs.get("config") or {}) for t in raw if t.number in set(front)}
    baseline = attrs.get("baseline")
    imp = knob_importances(study, trials) if importances and len(trials) else \
        Importances("PED-ANOVA", note="not computed" if not importances else "the study has no trials")
    return StudyData(
        name=study.study_name, attrs=attrs, trials=trials, pareto=pareto,
        presets=rows_frame(attrs.get("presets")), baseline=rows_frame([baseline] if baseline else None),
        configs=configs, importances=imp, counts=trial_counts(trials),
    )


def report_dirname(study_name: str) -> str:
    """A study name as one safe directory name (no separators, no leading dot), one per name:
    when cleaning or shortening changed the name, a short hash of the raw name is appended,
    so 'a/b' and 'a_b', or two names in another script, never share a report or export."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip("._") or "study"
    if safe == study_name and len(safe) <= 100:
        return safe
    digest = hashlib.sha1(study_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[:90]}-{digest}"
