"""The search report: the study page of the shared page writer (``page``), trials.csv and pareto.csv.

Every string that came from the user or the study (study name, paths, knob values,
reasons) is escaped. All three files are rendered in memory first and each is replaced
atomically, so an interrupted run leaves the previous report as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from markupsafe import Markup

from nasbench.report.files import csv_text, ensure_writable_dir
from nasbench.report.page import (
    BASELINE_COLOR,
    DEPLOY_NOTE,
    MACS_AXIS,
    MACS_NOTE,
    SCRIPT,
    TIMING_CAVEAT,
    Cell,
    Header,
    Row,
    Section,
    TableView,
    as_text,
    cards_html,
    cell,
    column_values,
    columns_html,
    config_block,
    detector_note,
    duration_text,
    family_colors,
    has_values,
    macros,
    notes_html,
    num,
    render_page,
    scaled,
    table_html,
    write_files,
)
from nasbench.report.schema import KNOB_PREFIX, column_doc
from nasbench.report.study import (
    DISPLAY_COLUMNS,
    QUEUED_LABEL,
    StudyData,
    latency_model_line,
    load_study_data,
    objective_name,
)
from nasbench.report.svg import Bars, Rule, Series, View, bars_svg, scatter_svg

__all__ = ["SCRIPT", "render_study_html", "write_report_files", "write_study_report"]

GREY = "#8a94a3"
FRONT = "#0072B2"
PRESET = "#E69F00"
BASELINE = BASELINE_COLOR
INFEASIBLE = "#d9534f"
MAX_FRONT_LABELS = 10  # more labels than this overlap; the Pareto table names them all
PAGE = macros("study.html.j2")  # the section markup


# ----------------------------------------------------------------------------- small helpers
def _objective_axis(attrs: dict[str, Any]) -> tuple[str, float, str]:
    """(label, display scale, short name) of the objective value."""
    if objective_name(attrs) == "macs":
        return "MACs, G (objective)", 1e-9, "MACs"
    if objective_name(attrs) == "estimate":
        label = str(attrs.get("objective_label") or "estimate")
        return f"{label} ({attrs.get('estimator')})", 1.0, "est. top-1" if "top-1" in label else "est. score"
    synthetic = bool((attrs.get("proxy") or {}).get("synthetic"))
    return ("proxy top-1, % (SYNTHETIC data)" if synthetic else "proxy top-1, %"), 1.0, "proxy top-1"


def _latency_label(attrs: dict[str, Any]) -> str:
    bits = [f"{attrs['imgsz']} px" if attrs.get("imgsz") else "", str(attrs.get("device") or ""),
            str(attrs.get("dtype") or "")]
    return "backbone latency, ms (median" + "".join(f", {b}" for b in bits if b) + ")"


def _budget_rules(attrs: dict[str, Any], axis: str) -> list[Rule]:
    budget = num(attrs.get("budget_ms"))
    return [Rule(axis, budget, f"budget {budget:g} ms")] if budget is not None else []


def _tips(frame: pd.DataFrame, obj_short: str, obj_scale: float) -> list[str]:
    out = []
    for r in frame.to_dict("records"):
        lat, val = num(r.get("latency_ms")), num(r.get("value"))
        macs = num(r.get("macs"))
        parts = [str(r.get("name", "")), str(r.get("family") or "")]
        if lat is not None:
            parts.append(f"{lat:.2f} ms")
        if val is not None and obj_short != "MACs":
            parts.append(f"{obj_short} {val * obj_scale:.2f}")
        if macs is not None:
            parts.append(f"{macs / 1e9:.3f} GMACs")
        if r.get("reason"):
            parts.append(str(r["reason"]))
        out.append(" · ".join(p for p in parts if p))
    return out


def _ref_y(frame: pd.DataFrame, attrs: dict[str, Any]) -> list[float | None]:
    """Objective values of preset/baseline rows (proxy_top1 or macs), scaled for display."""
    _, scale, _ = _objective_axis(attrs)
    col = {"macs": "macs", "estimate": "est_value"}.get(objective_name(attrs), "proxy_top1")
    return scaled(column_values(frame, col), scale)


# ----------------------------------------------------------------------------- plots
def _focus_range(values: Sequence[float | None], extra: Sequence[float | None] = ()) -> tuple[float, float] | None:
    """The x range that shows every trial (and the budget), padded a little."""
    vals = [v for v in list(values) + list(extra) if v is not None]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.06 or abs(hi) * 0.1 or 1.0
    return lo - pad, hi + pad


def _latency_limit(attrs: dict[str, Any], trial_latencies: Sequence[float | None]) -> float | None:
    """Reference points up to this latency are relevant to the search and stay in view."""
    vals = [v for v in trial_latencies if v is not None] + [v for v in [num(attrs.get("budget_ms"))] if v is not None]
    return max(vals) if vals else None


def _off_view(names: Sequence[str], xs: Sequence[float | None], view: tuple[float, float] | None,
              describe: Sequence[str]) -> list[str]:
    """Reference points left out of a focused view, described for the caption."""
    if view is None:
        return []
    return [f"{n} ({d})" for n, x, d in zip(names, xs, describe) if x is not None and not view[0] <= x <= view[1]]


def _off_caption(off: list[str]) -> str:
    if not off:
        return ""
    return " The view is cut to the trials; outside it: " + "; ".join(off) + "."


def pareto_plot(data: StudyData) -> tuple[str, str]:
    """The front plot and a caption note naming reference points outside the view."""
    attrs, trials = data.attrs, data.trials
    y_label, scale, short = _objective_axis(attrs)
    complete = trials[trials["state"] == "complete"] if len(trials) else trials
    measured = complete[complete["duplicate_of"].isna()] if "duplicate_of" in complete.columns else complete
    feasible = measured[measured["feasible"].astype(bool) & ~measured["pareto"].astype(bool)]
    infeasible = measured[~measured["feasible"].astype(bool)]
    front = data.pareto
    series = [
        Series("feasible trials", column_values(feasible, "latency_ms"),
               scaled(column_values(feasible, "value"), scale), GREY,
               size=3.2, opacity=0.55, tips=_tips(feasible, short, scale)),
    ]
    shown_lat = column_values(feasible, "latency_ms") + column_values(front, "latency_ms")
    if objective_name(attrs) == "macs":  # infeasible trials still have a meaningful y (their MACs)
        series.append(Series("over budget / caps", column_values(infeasible, "latency_ms"),
                             scaled(column_values(infeasible, "value"), scale),
                             INFEASIBLE, marker="cross", size=3.5, opacity=0.6, tips=_tips(infeasible, short, scale)))
        shown_lat += column_values(infeasible, "latency_ms")
    series.append(Series("Pareto front", column_values(front, "latency_ms"),
                         scaled(column_values(front, "value"), scale), FRONT,
                         size=4.5, line="step", line_width=2, tips=_tips(front, short, scale),
                         labels=[str(n) for n in front["name"]] if len(front) <= MAX_FRONT_LABELS else None))
    rules = _budget_rules(attrs, "x")
    limit = _latency_limit(attrs, shown_lat)
    refs_in_budget = [v for v in column_values(data.presets, "latency_ms") + column_values(data.baseline, "latency_ms")
                      if v is not None and limit is not None and v <= limit]
    x_view = _focus_range(shown_lat, [r.value for r in rules] + refs_in_budget)
    off: list[str] = []
    presets = data.presets
    if len(presets):
        names, lat, ys = [str(n) for n in presets["name"]], column_values(presets, "latency_ms"), _ref_y(presets, attrs)
        series.append(Series("named presets", lat, ys, PRESET, marker="diamond", size=4.5, labels=names,
                             tips=[f"{n} (preset)" for n in names]))
        off += _off_view(names, lat, x_view, [_ref_desc(x, y, short) for x, y in zip(lat, ys)])
    base = data.baseline
    if len(base):
        b_lat, b_y = column_values(base, "latency_ms")[0], _ref_y(base, attrs)[0]
        name = str(base["name"].iloc[0])
        if b_lat is not None and b_y is not None:
            series.append(Series(name, [b_lat], [b_y], BASELINE, marker="star", size=5, labels=[name]))
            off += _off_view([name], [b_lat], x_view, [_ref_desc(b_lat, b_y, short)])
        elif b_lat is not None:
            rules.append(Rule("x", b_lat, f"{name} backbone {b_lat:.1f} ms", BASELINE))
            off += _off_view([f"{name} backbone"], [b_lat], x_view, [f"{b_lat:.1f} ms"])
    svg = scatter_svg(series, x_label=_latency_label(attrs), y_label=y_label, plot_id="plot-pareto",
                      title=f"Pareto front: {short} vs latency", view=View(1240, 540, x_range=x_view), rules=rules,
                      empty_text="no feasible completed trial yet")
    return svg, _off_caption(off)


def _ref_desc(lat: float | None, y: float | None, short: str) -> str:
    parts = [f"{lat:.1f} ms" if lat is not None else ""]
    if y is not None:
        parts.append(f"{y:.2f} G" if short == "MACs" else f"{short} {y:.1f}")
    return ", ".join(p for p in parts if p)


def macs_latency_plot(data: StudyData) -> tuple[str, str]:
    attrs, trials = data.attrs, data.trials
    complete = trials[(trials["state"] == "complete")] if len(trials) else trials
    if "duplicate_of" in complete.columns:
        complete = complete[complete["duplicate_of"].isna()]
    families = list(dict.fromkeys([str(f) for f in complete.get("family", pd.Series(dtype=object)).dropna()]
                                  + [str(f) for f in data.presets.get("family", pd.Series(dtype=object)).dropna()]))
    color = family_colors(families)
    series = []
    for fam in families:
        sub = complete[complete["family"] == fam]
        if len(sub):
            series.append(Series(fam, scaled(column_values(sub, "macs"), 1e-9), column_values(sub, "latency_ms"),
                                 color[fam], size=3.2, opacity=0.6, tips=_tips(sub, "", 1.0)))
    limit = _latency_limit(attrs, column_values(complete, "latency_ms"))
    refs = pd.concat([f for f in (data.presets, data.baseline) if len(f)]) if len(data.presets) or len(data.baseline) \
        else pd.DataFrame()
    refs_in_budget = [m for m, lat in zip(scaled(column_values(refs, "macs"), 1e-9), column_values(refs, "latency_ms"))
                      if m is not None and lat is not None and limit is not None and lat <= limit]
    x_view = _focus_range(scaled(column_values(complete, "macs"), 1e-9), refs_in_budget)
    off: list[str] = []
    presets = data.presets
    if len(presets):
        for fam in families:
            sub = presets[presets["family"] == fam]
            if len(sub):
                names, xs, ys = ([str(n) for n in sub["name"]], scaled(column_values(sub, "macs"), 1e-9),
                                 column_values(sub, "latency_ms"))
                series.append(Series("", xs, ys, color[fam], marker="diamond", size=4.5, labels=names,
                                     tips=[f"{n} (preset)" for n in names]))
                off += _off_view(names, xs, x_view, [_cost_desc(x, y) for x, y in zip(xs, ys)])
        series.append(Series("presets", [], [], "#555", marker="diamond"))
    base = data.baseline
    if len(base):
        bx, by = column_values(base, "macs")[0], column_values(base, "latency_ms")[0]
        if bx is not None and by is not None:
            name = f"{base['name'].iloc[0]} backbone"
            series.append(Series(name, [bx * 1e-9], [by], BASELINE, marker="star", size=5, labels=[name]))
            off += _off_view([name], [bx * 1e-9], x_view, [_cost_desc(bx * 1e-9, by)])
    svg = scatter_svg(series, x_label=MACS_AXIS, y_label="latency, ms (median)", plot_id="plot-macs-latency",
                      title="MACs vs latency by family", view=View(610, 440, x_range=x_view),
                      rules=_budget_rules(attrs, "y"), empty_text="no measured trial yet")
    return svg, _off_caption(off)


def _cost_desc(macs_g: float | None, lat: float | None) -> str:
    return ", ".join(p for p in (f"{macs_g:.2f} GMACs" if macs_g is not None else "",
                                 f"{lat:.1f} ms" if lat is not None else "") if p)


def history_plot(data: StudyData) -> str:
    attrs, trials = data.attrs, data.trials
    y_label, scale, short = _objective_axis(attrs)
    usable = trials[(trials["state"] == "complete") & trials["feasible"].astype(bool)] if len(trials) else trials
    xs, ys = column_values(usable, "trial"), scaled(column_values(usable, "value"), scale)
    best_x, best_y, best = [], [], -math.inf
    for x, y in zip(xs, ys):
        if x is not None and y is not None and y > best:
            best = y
            best_x.append(x)
            best_y.append(y)
    if best_x and xs:
        last = max(v for v in xs if v is not None)
        if last > best_x[-1]:
            best_x.append(last)
            best_y.append(best)
    series = [Series("feasible trial", xs, ys, GREY, size=3, opacity=0.55, tips=_tips(usable, short, scale)),
              Series("best so far", best_x, best_y, FRONT, marker="none", line="step", line_width=2)]
    return scatter_svg(series, x_label="trial number", y_label=y_label, plot_id="plot-history",
                       title="Optimisation history", view=View(610, 440),
                       empty_text="no feasible completed trial yet")


def importance_plot(data: StudyData) -> str:
    imp = data.importances
    _, _, short = _objective_axis(data.attrs)
    knobs = sorted(set(imp.objective) | set(imp.latency),
                   key=lambda k: (-imp.objective.get(k, 0.0), -imp.latency.get(k, 0.0)))
    groups = []
    if imp.objective:
        groups.append(Bars(f"for {short}", [imp.objective.get(k) for k in knobs], FRONT))
    if imp.latency:
        groups.append(Bars("for latency", [imp.latency.get(k) for k in knobs], PRESET))
    return bars_svg(knobs, groups, x_label="importance (PED-ANOVA, normalised: each series sums to 1)",
                    plot_id="plot-importance", title="Knob importances", width=760, x_max=1.0)


# ----------------------------------------------------------------------------- tables
def knob_columns(frame: pd.DataFrame) -> list[tuple[str, str, float, str]]:
    return [(c, c[len(KNOB_PREFIX):], 1, "{}") for c in frame.columns if c.startswith(KNOB_PREFIX)]


def reference_table(data: StudyData) -> tuple[Markup | None, str]:
    """The presets' and the baseline's rows (or None when the study has neither) and a caption note."""
    refs = pd.concat([f for f in (data.presets, data.baseline) if len(f)], ignore_index=True) \
        if len(data.presets) or len(data.baseline) else pd.DataFrame()
    if refs.empty:
        return None, ""
    cols = [c for c in DISPLAY_COLUMNS
            if c[0] not in ("trial", "state", "feasible", "duplicate_of", "duration_s", "reason")]
    note = ""
    if len(data.baseline) and has_values(data.baseline, "det_macs"):
        note = (f"{data.baseline['name'].iloc[0]}: the params, MACs and latency columns are its backbone alone, "
                "measured like the trials; the det columns are the whole detector.")
    return table_html(refs, cols, table_id="refs", sortable=False), note


DETECTOR_METRICS = [("det_params", "det params M", 1e-6, "{:.2f}"), ("det_macs", "det MACs G", 1e-9, "{:.2f}"),
                    ("det_flops", "det FLOPs G (2×MACs)", 1e-9, "{:.2f}"),
                    ("det_latency_ms", "det latency ms", 1, "{:.1f}")]


def _ratio_cell(value: Any, base: Any) -> Cell:
    v, b = num(value), num(base)
    return Cell(f"{v / b:.2f}×", "num", repr(v / b)) if v is not None and b else Cell("—", "num", "")


def detector_table(data: StudyData) -> Markup | str:
    """The whole detector on each Pareto backbone, with ratios to the baseline's own detector."""
    front, base = data.pareto, data.baseline
    if not any(has_values(front, c) for c in ("det_macs", "det_latency_ms", "det_params")):
        return ""
    ref = base.iloc[0].to_dict() if len(base) else {}
    base_name = str(ref.get("name", "baseline"))
    metrics = [m for m in DETECTOR_METRICS if has_values(front, m[0])]
    ratio_cols = [m for m in metrics if num(ref.get(m[0])) not in (None, 0.0) and m[0] != "det_flops"]
    context = [m for m in (("proxy_top1", "proxy top-1 %", 1, "{:.2f}"), ("latency_ms", "backbone ms", 1, "{:.2f}"))
               if has_values(front, m[0])]
    headers = [Header("model"), *(Header(h, column_doc(c)) for c, h, _, _ in context + metrics),
               *(Header(f"{h.split(' ')[1]} vs {base_name}") for _, h, _, _ in ratio_cols)]
    rows = []
    if ref:
        rows.append(Row([Cell(base_name, "bold"), *(cell(ref.get(c), c, s, f) for c, _, s, f in context + metrics),
                         *(Cell("1.00×", "num") for _ in ratio_cols)], ["ref"]))
    for r in front.to_dict("records"):
        rows.append(Row([Cell(str(r.get("name"))), *(cell(r.get(c), c, s, f) for c, _, s, f in context + metrics),
                         *(_ratio_cell(r.get(c), ref.get(c)) for c, _, _, _ in ratio_cols)]))
    det_imgsz = data.attrs.get("det_imgsz")
    caption = "Whole RT-DETR detector built on each Pareto backbone" + (f", at {det_imgsz} px" if det_imgsz else "")
    caption += (f" (the {base_name} row: its own backbone's numbers in the first columns)" if ref
                else "; no rtdetr_l baseline was recorded, so no ratios")
    return PAGE.detector(TableView("det", headers, rows), caption)


def configs_html(data: StudyData) -> Markup:
    _, scale, short = _objective_axis(data.attrs)
    out = []
    for r in data.pareto.to_dict("records"):
        n = int(r["trial"])
        cfg = data.configs.get(n, {})
        lat, val = num(r.get("latency_ms")), num(r.get("value"))
        summary = f"{r['name']} — {r.get('family') or '?'}"
        if lat is not None:
            summary += f" · {lat:.2f} ms"
        if val is not None:
            summary += f" · {short} {val * scale:.2f}" + ("" if short != "MACs" else " G")
        out.append(config_block(str(n), summary, str(r["name"]), cfg))
    return PAGE.configs(out)


# ----------------------------------------------------------------------------- text
def summary_html(data: StudyData, storage_label: str | None) -> Markup:
    a, c = data.attrs, data.counts
    budget = num(a.get("budget_ms"))
    caps = ", ".join(x for x in (
        f"params ≤ {a['max_params'] / 1e6:g} M" if num(a.get("max_params")) else "",
        f"MACs ≤ {a['max_macs'] / 1e9:g} G" if num(a.get("max_macs")) else "") if x) or "none"
    run = [("space", a.get("space")), ("families", a.get("families")), ("target", a.get("target")),
              ("objective", objective_name(a)), ("latency budget", f"{budget:g} ms" if budget is not None else None),
              ("other caps", caps), ("backbone imgsz", f"{a['imgsz']} px" if a.get("imgsz") else None),
              ("detector imgsz",
               f"{a['det_imgsz']} px" if a.get("target") == "detector" and a.get("det_imgsz") else None)]
    cuda = a.get("cuda_version") or ("none" if a.get("device") == "cpu" else None)
    hw = [("device", a.get("device")), ("device name", a.get("device_name")), ("dtype", a.get("dtype")),
             ("threads", a.get("threads")), ("torch", a.get("torch_version")), ("CUDA", cuda),
             ("nasbench", a.get("nasbench_version")), ("storage", storage_label)]
    trials = [("trials run", c["run"]), ("complete, feasible", c["feasible"]),
                 ("complete, over budget/caps", c["infeasible"]),
                 ("predicted over budget (never timed)", c.get("predicted_over") or None),
                 ("pruned", c["pruned"]), ("failed", c["failed"]),
                 *((("surplus (another worker filled --max-total; never ran)", c["surplus"]),) if c["surplus"] else ()),
                 ("still running", c["running"] or None),
                 (QUEUED_LABEL, c["queued"] or None),
                 ("reused duplicates", c["duplicates"]),
                 ("on the Pareto front", len(data.pareto)), ("search wall time", duration_text(a.get("wall_s")))]
    return cards_html([("Search", run), ("Hardware and software", hw), ("Trials", trials)])


def objective_notes(a: dict[str, Any]) -> list[str]:
    """What the objective is and how far it can be trusted (estimate, cost-only or proxy training)."""
    notes: list[str] = []
    proxy = a.get("proxy")
    if objective_name(a) == "estimate":
        validity = (a.get("objective_validity") or {}).get("line", "")
        notes.append(f"Objective: {as_text(a.get('objective_label'))} from the estimator "
                     f"{as_text(a.get('estimator'))}, computed from each freshly initialised candidate alone "
                     "(no training, no names). Fitted estimators leave the candidate's own family out of their "
                     f"fit. How far it can be trusted: {validity}. Presets show their published top-1 "
                     "(published_top1) beside the estimate.")
    elif not proxy:
        notes.append("No proxy training (cost-only search, --no-train): the objective is MACs under the latency "
                     "budget, i.e. the most computation that fits, as a stand-in for capacity. Accuracy was not "
                     "estimated at all.")
    else:
        notes.append(f"Proxy task: {as_text(proxy.get('data'))}; {as_text(proxy.get('steps'))} training steps at "
                     f"{as_text(proxy.get('imgsz'))} px, batch {as_text(proxy.get('batch'))}, "
                     f"seed {as_text(proxy.get('seed'))}. "
                     "proxy_top1 is top-1 accuracy on that task's validation split, in %.")
        probe, whole = proxy.get("probe_val_images"), proxy.get("val_images")
        if probe and whole and probe < whole:
            notes.append(f"Pruning compared intermediate top-1 on a fixed, class-balanced {probe:,} of the "
                         f"{whole:,} validation images; the final proxy_top1 always uses all {whole:,}.")
        validity = (a.get("objective_validity") or {}).get("line")
        if validity:
            notes.append(f"How this proxy was validated: {validity}.")
        if proxy.get("synthetic"):
            notes.append("The proxy data was SYNTHETIC (generated, not real images). proxy_top1 only says how fast "
                         "a candidate learns a toy task; it says nothing about ImageNet or COCO accuracy.")
    return notes


def methodology_notes(data: StudyData) -> list[str]:
    a = data.attrs
    trials = data.trials
    first = trials[trials["latency_ms"].notna()].iloc[0].to_dict() if has_values(trials, "latency_ms") else {}
    notes = [MACS_NOTE, DEPLOY_NOTE]
    if a.get("timing_what"):
        notes.append(f"Latency: {a['timing_what']}.")
    else:
        runs = first.get("latency_runs")
        notes.append(
            "Latency: median of " + (f"{runs} timed" if num(runs) else "the timed")
            + f" forward passes per candidate after warm-up, batch {as_text(first.get('batch', 1))}, "
            f"{as_text(a.get('imgsz'))}×{as_text(a.get('imgsz'))} px input, {as_text(a.get('dtype'))}, on "
            f"{as_text(a.get('device_name'))} ({as_text(a.get('device'))}, {as_text(a.get('threads'))} threads), "
            f"torch {as_text(a.get('torch_version'))}. latency_p10_ms / latency_p90_ms give the spread. "
            + TIMING_CAVEAT)
    budget = num(a.get("budget_ms"))
    if budget is not None:
        notes.append(f"Budget: a candidate whose median latency exceeded {budget:g} ms (or a params/MACs cap) is "
                     "infeasible; it is measured but never trained and never on the Pareto front.")
    notes += objective_notes(a)
    model_line = latency_model_line(trials)
    if model_line:
        notes.append(f"Latency model (fitted online on this study's timed trials: non-negative ms per unit of each "
                     f"kind of work the counter separates; a candidate is skipped only when even the optimistic end "
                     f"of its leave-one-out error is over the budget, and every 4th such one is timed anyway): "
                     f"{model_line.removeprefix('latency model: ')}.")
    starts = trials["start"].dropna() if "start" in trials.columns else []
    if len(starts):
        notes.append(f"Start: the first {int((starts == 'preset').sum())} trial(s) were the space's named presets "
                     "projected onto its knobs (preset column), followed by width-scaled versions aimed at the "
                     f"budget ({int((starts == 'aimed').sum())}); the sampler proposed the rest.")
    notes.append("Pareto front: completed feasible trials that no other such trial beats on both latency (lower) and "
                 "the objective (higher). A config sampled twice is measured once; later copies reuse the "
                 "measurement (duplicate_of) and are not counted again.")
    notes.append("Knob importances: Optuna's PED-ANOVA evaluator, which scores how differently each knob is "
                 "distributed among the best 10% of trials than among all of them (normalised to sum to 1). The "
                 "objective series uses feasible completed trials; the latency series every timed trial. Knobs "
                 "that only some families have are scored over the trials that have them.")
    if has_values(trials, "det_macs") or has_values(trials, "det_latency_ms"):
        notes.append(detector_note(a.get("det_imgsz")))
    return notes


def _subtitle(a: dict[str, Any]) -> str:
    budget = num(a.get("budget_ms"))
    return " · ".join(x for x in (
        f"space {as_text(a.get('space'))}", f"families {as_text(a.get('families'))}",
        f"target {as_text(a.get('target'))}",
        f"budget {budget:g} ms" if budget is not None else "",
        f"{as_text(a.get('device_name'))} ({as_text(a.get('device'))}, {as_text(a.get('dtype'))}, "
        f"{as_text(a.get('threads'))} threads)",
    ) if x)


def _banner(a: dict[str, Any]) -> Markup | str:
    """A warning above the page when the objective is not an accuracy signal at all."""
    if (a.get("proxy") or {}).get("synthetic"):
        return PAGE.synthetic_banner()
    if objective_name(a) != "estimate" and not a.get("proxy"):
        return PAGE.cost_only_banner()
    return ""


def _plot_sections(data: StudyData, short: str) -> list[Section]:
    """The Pareto front (with its tables), MACs vs latency, the history and the importances."""
    trial_cols = list(DISPLAY_COLUMNS) + knob_columns(data.trials)
    pareto_cols = [c for c in trial_cols if c[0] not in ("state", "feasible", "duplicate_of", "reason")]
    front_svg, front_off = pareto_plot(data)
    cost_svg, cost_off = macs_latency_plot(data)
    front_table = table_html(data.pareto, pareto_cols, table_id="pareto-table", name_link=_config_anchor,
                             max_height_px=400)
    refs_table, refs_note = reference_table(data)
    imp = data.importances
    imp_svg = Markup(importance_plot(data)) if imp.objective or imp.latency else None
    return [
        Section("pareto", "Pareto front", f"Pareto front: {short} vs latency",
                PAGE.pareto(Markup(front_svg), front_off, len(data.pareto), front_table, refs_table, refs_note)),
        Section("cost", "MACs vs latency", "MACs vs latency by family", PAGE.cost(Markup(cost_svg), cost_off),
                half=True),
        Section("history", "History", "Optimisation history", PAGE.history(Markup(history_plot(data))), half=True),
        Section("importance", "Knob importances", "Knob importances",
                PAGE.importance(imp_svg, short, imp.note) or " "),  # kept (empty) so the page's layout is fixed
    ]


def render_study_html(data: StudyData, *, storage_label: str | None = None, generated: datetime | None = None) -> str:
    a = data.attrs
    _, _, short = _objective_axis(a)
    trial_cols = list(DISPLAY_COLUMNS) + knob_columns(data.trials)
    base_name = str(data.baseline["name"].iloc[0]) if len(data.baseline) else "baseline"
    sections = [
        Section("summary", "Summary", "Summary", summary_html(data, storage_label)),
        *_plot_sections(data, short),
        Section("detector", f"Detector vs {base_name}", f"Detector-level cost vs {base_name}", detector_table(data)),
        Section("configs", "Pareto configs", "Pareto configs", configs_html(data)),
        Section("trials", "All trials", f"All trials ({len(data.trials)})",
                PAGE.trials(table_html(data.trials, trial_cols, table_id="trials-table", row_classes=_trial_classes,
                                       name_link=_config_anchor))),
        Section("columns", "CSV columns", "CSV columns", PAGE.columns(columns_html(data.trials))),
        Section("method", "Methodology", "Methodology", notes_html(methodology_notes(data))),
    ]
    return render_page(kind="search", title=data.name, title_id="study-name", sub=_subtitle(a), sections=sections,
                       banner=_banner(a), version=as_text(a.get("nasbench_version")), generated=generated)


def _trial_classes(r: dict[str, Any]) -> list[str]:
    """Pareto rows blue, failed/pruned/over-budget rows dimmed (see STYLE)."""
    classes = ["pareto"] if r.get("pareto") else []
    state = r.get("state")
    if state in ("failed", "pruned"):
        classes.append(str(state))
    elif state == "complete" and not r.get("feasible"):
        classes.append("infeasible")
    return classes


def _config_anchor(r: dict[str, Any]) -> str | None:
    return f"cfg-{int(r['trial'])}" if r.get("pareto") else None


# ----------------------------------------------------------------------------- writer
def write_study_report(study: optuna.Study, out_dir: Path, *, storage_label: str | None = None) -> list[Path]:
    """Write ``index.html``, ``trials.csv`` and ``pareto.csv`` for ``study`` into ``out_dir``."""
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir, "report directory")
    return write_report_files(load_study_data(study), out_dir, storage_label=storage_label)


def write_report_files(data: StudyData, out_dir: Path, *, storage_label: str | None = None) -> list[Path]:
    """Render everything in memory first, then replace each file atomically (index.html last).

    An interrupted or failed run therefore leaves the previous report in place, and a
    reader never finds a page newer than the CSVs it points to.
    """
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir, "report directory")
    texts = {
        "trials.csv": csv_text(data.trials),
        "pareto.csv": csv_text(data.pareto),
        "index.html": render_study_html(data, storage_label=storage_label),
    }
    return write_files({out_dir / name: text for name, text in texts.items()})
