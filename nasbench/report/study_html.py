"""The search report: one self-contained HTML page plus trials.csv and pareto.csv.

The page works from ``file://`` with no network: styles, the tiny table-sorting script
and every plot (inline SVG) are inside the file, and a Content-Security-Policy forbids
loading anything else and running any script but ours (pinned by hash). Every string
that came from the user or the study (study name, paths, knob values, reasons) is
escaped. All three files are rendered in memory first and each is replaced atomically,
so an interrupted run leaves the previous report as it was.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import optuna
import pandas as pd
import yaml

from nasbench.report.files import atomic_write_text, ensure_writable_dir
from nasbench.report.html import METHOD_NOTES
from nasbench.report.study import (DISPLAY_COLUMNS, KNOB_PREFIX, StudyData, column_doc, load_study_data,
                                   objective_name)
from nasbench.report.svg import PALETTE, Bars, Rule, Series, bars_svg, scatter_svg
from nasbench.report.table import format_cell

esc = html.escape

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8;
 font-size:14px;line-height:1.45}
main{max-width:1320px;margin:0 auto;padding:24px 28px 60px}
header .kicker{color:#5b6472;font-size:13px;text-transform:uppercase;letter-spacing:.06em}
h1{font-size:26px;margin:2px 0 4px;word-break:break-all}h2{font-size:19px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.sub{color:#4a5361;margin:0 0 12px}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;margin:10px 0 18px;font-size:13px}
nav a{color:#0b5cad;text-decoration:none}nav a:hover{text-decoration:underline}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px 18px;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.cards>div{border:1px solid #eceef1;border-radius:6px;padding:10px 12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dt{color:#5b6472}dd{margin:0;font-variant-numeric:tabular-nums;word-break:break-word}
.warn{background:#fff4d6;border:1px solid #e9c46a;border-radius:6px;padding:10px 14px;margin:0 0 18px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.grid2>section{margin:0}
svg.plot{max-width:100%;height:auto;display:block}
.caption{color:#5b6472;font-size:13px;margin:6px 0 0}
.scroll{overflow:auto;border:1px solid #eceef1;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:max-content;min-width:100%}
th,td{padding:4px 9px;border-bottom:1px solid #eceef1;white-space:nowrap}
th{background:#f0f2f5;text-align:left;position:sticky;top:0;z-index:1}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.txt{max-width:340px;overflow:hidden;text-overflow:ellipsis}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
tr.pareto td{background:#eaf3fc}tr.pareto td:first-child{box-shadow:inset 3px 0 #0072B2}
tr.infeasible td,tr.pruned td{color:#7a828e}tr.failed td{color:#a3262a}
tr.ref td{background:#fff8e6}
.cfgs{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:8px;align-items:start}
.cfg{border:1px solid #eceef1;border-radius:6px}
.cfg summary{padding:6px 10px;cursor:pointer}
.cfg pre{margin:0;padding:10px 12px;background:#f7f8fa;border-top:1px solid #eceef1;overflow:auto;font-size:12.5px}
.cfg .bar{display:flex;justify-content:flex-end;padding:4px 8px 0;background:#f7f8fa}
button.copy{font:inherit;font-size:12px;padding:2px 10px;border:1px solid #c5cad3;border-radius:4px;background:#fff;
 cursor:pointer}
ul.notes{margin:0;padding-left:20px;max-width:75rem}ul.notes li{margin:0 0 6px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}
.muted{color:#5b6472}
.imp{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.imp .caption{max-width:380px;margin-top:24px}
@media (max-width:1000px){.cards,.grid2{grid-template-columns:1fr}}
"""

# Static: it reads only the DOM. Sorts tables, copies configs, marks the page ready.
SCRIPT = """(function(){
function key(td){var v=td.getAttribute('data-v');if(v!==null){return v===''?null:parseFloat(v);}
 var t=td.textContent.trim();return (t===''||t==='\\u2014')?null:t.toLowerCase();}
function sortTable(table,col,th){
 var asc=th.getAttribute('aria-sort')!=='ascending';var body=table.tBodies[0];
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
  if(x===null&&y===null){return 0;}if(x===null){return 1;}if(y===null){return -1;}
  if(typeof x==='number'&&typeof y==='number'){return asc?x-y:y-x;}
  x=String(x);y=String(y);return asc?x.localeCompare(y):y.localeCompare(x);});
 Array.prototype.forEach.call(th.parentNode.cells,function(c){c.removeAttribute('aria-sort');});
 th.setAttribute('aria-sort',asc?'ascending':'descending');
 var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});body.appendChild(frag);}
document.querySelectorAll('table.sortable').forEach(function(table){
 Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){th.tabIndex=0;
  th.addEventListener('click',function(){sortTable(table,i,th);});
  th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sortTable(table,i,th);}});});});
document.querySelectorAll('button.copy').forEach(function(btn){btn.addEventListener('click',function(){
 var pre=document.getElementById(btn.getAttribute('data-for'));
 function done(){btn.textContent='copied';setTimeout(function(){btn.textContent='copy';},1500);}
 function fallback(){var r=document.createRange();r.selectNodeContents(pre);var s=window.getSelection();
  s.removeAllRanges();s.addRange(r);try{document.execCommand('copy');done();}catch(e){btn.textContent='press Ctrl+C';}}
 if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(pre.textContent).then(done,fallback);}
 else{fallback();}});});
document.documentElement.setAttribute('data-ready','1');
})();"""

GREY = "#8a94a3"
FRONT = "#0072B2"
PRESET = "#E69F00"
BASELINE = "#D55E00"
INFEASIBLE = "#d9534f"
MAX_FRONT_LABELS = 10  # more labels than this overlap; the Pareto table names them all


# ----------------------------------------------------------------------------- small helpers
def _num(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _col(frame: pd.DataFrame, name: str) -> list[float | None]:
    if name not in frame.columns:
        return [None] * len(frame)
    return [_num(v) for v in frame[name].tolist()]


def _scaled(values: list[float | None], scale: float) -> list[float | None]:
    return [None if v is None else v * scale for v in values]


def _has(frame: pd.DataFrame, col: str) -> bool:
    return col in frame.columns and bool(frame[col].notna().any())


def _fmt_duration(seconds: Any) -> str:
    s = _num(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def _txt(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def _objective_axis(attrs: dict[str, Any]) -> tuple[str, float, str]:
    """(label, display scale, short name) of the objective value."""
    if objective_name(attrs) == "macs":
        return "MACs, G (objective)", 1e-9, "MACs"
    synthetic = bool((attrs.get("proxy") or {}).get("synthetic"))
    return ("proxy top-1, % (SYNTHETIC data)" if synthetic else "proxy top-1, %"), 1.0, "proxy top-1"


def _latency_label(attrs: dict[str, Any]) -> str:
    bits = [f"{attrs['imgsz']} px" if attrs.get("imgsz") else "", str(attrs.get("device") or ""), str(attrs.get("dtype") or "")]
    return "backbone latency, ms (median" + "".join(f", {b}" for b in bits if b) + ")"


def _budget_rules(attrs: dict[str, Any], axis: str) -> list[Rule]:
    budget = _num(attrs.get("budget_ms"))
    return [Rule(axis, budget, f"budget {budget:g} ms")] if budget is not None else []


def _tips(frame: pd.DataFrame, obj_short: str, obj_scale: float) -> list[str]:
    out = []
    for r in frame.to_dict("records"):
        lat, val = _num(r.get("latency_ms")), _num(r.get("value"))
        macs = _num(r.get("macs"))
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
    col = "macs" if objective_name(attrs) == "macs" else "proxy_top1"
    return _scaled(_col(frame, col), scale)


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
    vals = [v for v in trial_latencies if v is not None] + [v for v in [_num(attrs.get("budget_ms"))] if v is not None]
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
        Series("feasible trials", _col(feasible, "latency_ms"), _scaled(_col(feasible, "value"), scale), GREY,
               size=3.2, opacity=0.55, tips=_tips(feasible, short, scale)),
    ]
    shown_lat = _col(feasible, "latency_ms") + _col(front, "latency_ms")
    if objective_name(attrs) == "macs":  # infeasible trials still have a meaningful y (their MACs)
        series.append(Series("over budget / caps", _col(infeasible, "latency_ms"), _scaled(_col(infeasible, "value"), scale),
                             INFEASIBLE, marker="cross", size=3.5, opacity=0.6, tips=_tips(infeasible, short, scale)))
        shown_lat += _col(infeasible, "latency_ms")
    series.append(Series("Pareto front", _col(front, "latency_ms"), _scaled(_col(front, "value"), scale), FRONT,
                         size=4.5, line="step", line_width=2, tips=_tips(front, short, scale),
                         labels=[str(n) for n in front["name"]] if len(front) <= MAX_FRONT_LABELS else None))
    rules = _budget_rules(attrs, "x")
    limit = _latency_limit(attrs, shown_lat)
    refs_in_budget = [v for v in _col(data.presets, "latency_ms") + _col(data.baseline, "latency_ms")
                      if v is not None and limit is not None and v <= limit]
    view = _focus_range(shown_lat, [r.value for r in rules] + refs_in_budget)
    off: list[str] = []
    presets = data.presets
    if len(presets):
        names, lat, ys = [str(n) for n in presets["name"]], _col(presets, "latency_ms"), _ref_y(presets, attrs)
        series.append(Series("named presets", lat, ys, PRESET, marker="diamond", size=4.5, labels=names,
                             tips=[f"{n} (preset)" for n in names]))
        off += _off_view(names, lat, view, [_ref_desc(x, y, short) for x, y in zip(lat, ys)])
    base = data.baseline
    if len(base):
        b_lat, b_y = _col(base, "latency_ms")[0], _ref_y(base, attrs)[0]
        name = str(base["name"].iloc[0])
        if b_lat is not None and b_y is not None:
            series.append(Series(name, [b_lat], [b_y], BASELINE, marker="star", size=5, labels=[name]))
            off += _off_view([name], [b_lat], view, [_ref_desc(b_lat, b_y, short)])
        elif b_lat is not None:
            rules.append(Rule("x", b_lat, f"{name} backbone {b_lat:.1f} ms", BASELINE))
            off += _off_view([f"{name} backbone"], [b_lat], view, [f"{b_lat:.1f} ms"])
    svg = scatter_svg(series, x_label=_latency_label(attrs), y_label=y_label, plot_id="plot-pareto",
                      title=f"Pareto front: {short} vs latency", width=1240, height=540, rules=rules, x_range=view,
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
    color = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    series = []
    for fam in families:
        sub = complete[complete["family"] == fam]
        if len(sub):
            series.append(Series(fam, _scaled(_col(sub, "macs"), 1e-9), _col(sub, "latency_ms"), color[fam],
                                 size=3.2, opacity=0.6, tips=_tips(sub, "", 1.0)))
    limit = _latency_limit(attrs, _col(complete, "latency_ms"))
    refs = pd.concat([f for f in (data.presets, data.baseline) if len(f)]) if len(data.presets) or len(data.baseline) \
        else pd.DataFrame()
    refs_in_budget = [m for m, lat in zip(_scaled(_col(refs, "macs"), 1e-9), _col(refs, "latency_ms"))
                      if m is not None and lat is not None and limit is not None and lat <= limit]
    view = _focus_range(_scaled(_col(complete, "macs"), 1e-9), refs_in_budget)
    off: list[str] = []
    presets = data.presets
    if len(presets):
        for fam in families:
            sub = presets[presets["family"] == fam]
            if len(sub):
                names, xs, ys = [str(n) for n in sub["name"]], _scaled(_col(sub, "macs"), 1e-9), _col(sub, "latency_ms")
                series.append(Series("", xs, ys, color[fam], marker="diamond", size=4.5, labels=names,
                                     tips=[f"{n} (preset)" for n in names]))
                off += _off_view(names, xs, view, [_cost_desc(x, y) for x, y in zip(xs, ys)])
        series.append(Series("presets", [], [], "#555", marker="diamond"))
    base = data.baseline
    if len(base):
        bx, by = _col(base, "macs")[0], _col(base, "latency_ms")[0]
        if bx is not None and by is not None:
            name = f"{base['name'].iloc[0]} backbone"
            series.append(Series(name, [bx * 1e-9], [by], BASELINE, marker="star", size=5, labels=[name]))
            off += _off_view([name], [bx * 1e-9], view, [_cost_desc(bx * 1e-9, by)])
    svg = scatter_svg(series, x_label="MACs per image, G (FLOPs = 2 × MACs)", y_label="latency, ms (median)",
                      plot_id="plot-macs-latency", title="MACs vs latency by family", width=610, height=440,
                      rules=_budget_rules(attrs, "y"), x_range=view, empty_text="no measured trial yet")
    return svg, _off_caption(off)


def _cost_desc(macs_g: float | None, lat: float | None) -> str:
    return ", ".join(p for p in (f"{macs_g:.2f} GMACs" if macs_g is not None else "",
                                 f"{lat:.1f} ms" if lat is not None else "") if p)


def history_plot(data: StudyData) -> str:
    attrs, trials = data.attrs, data.trials
    y_label, scale, short = _objective_axis(attrs)
    usable = trials[(trials["state"] == "complete") & trials["feasible"].astype(bool)] if len(trials) else trials
    xs, ys = _col(usable, "trial"), _scaled(_col(usable, "value"), scale)
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
                       title="Optimisation history", width=610, height=440,
                       empty_text="no feasible completed trial yet")


def importance_plot(data: StudyData) -> str:
    imp = data.importances
    _, _, short = _objective_axis(data.attrs)
    knobs = sorted(set(imp.objective) | set(imp.latency), key=lambda k: (-imp.objective.get(k, 0.0), -imp.latency.get(k, 0.0)))
    groups = []
    if imp.objective:
        groups.append(Bars(f"for {short}", [imp.objective.get(k) for k in knobs], FRONT))
    if imp.latency:
        groups.append(Bars("for latency", [imp.latency.get(k) for k in knobs], PRESET))
    return bars_svg(knobs, groups, x_label="importance (PED-ANOVA, normalised: each series sums to 1)",
                    plot_id="plot-importance", title="Knob importances", width=760, x_max=1.0)


# ----------------------------------------------------------------------------- tables
def _cell(value: Any, col: str, scale: float, fmt: str) -> str:
    """One table cell; numbers carry their raw value in data-v so the table sorts numerically."""
    if col == "feasible" and value is not None and value is not pd.NA:
        yes = bool(value)
        return f"<td data-v='{int(yes)}'>{'yes' if yes else 'no'}</td>"
    v = None if isinstance(value, (str, bool)) else _num(value)
    shown = format_cell(value, scale, fmt)
    if v is not None:
        return f"<td class='num' data-v='{v!r}'>{esc(shown)}</td>"
    if shown == "—" and col not in ("name", "family", "state", "reason"):
        return "<td class='num' data-v=''>—</td>"
    return f"<td class='txt' title='{esc(shown)}'>{esc(shown)}</td>"


def _present(frame: pd.DataFrame, columns: Sequence[tuple[str, str, float, str]]) -> list[tuple[str, str, float, str]]:
    return [c for c in columns if _has(frame, c[0])]


def table_html(frame: pd.DataFrame, columns: Sequence[tuple[str, str, float, str]], *, table_id: str,
               sortable: bool = True, link_pareto: bool = False, row_class: bool = True,
               max_height_px: int = 720) -> str:
    present = _present(frame, columns)
    head = "".join(f"<th title='{esc(column_doc(c) or c)}'>{esc(h)}</th>" for c, h, _, _ in present)
    body = []
    for r in frame.to_dict("records"):
        classes = []
        if row_class:
            if r.get("pareto"):
                classes.append("pareto")
            state = r.get("state")
            if state in ("failed", "pruned"):
                classes.append(str(state))
            elif state == "complete" and not r.get("feasible"):
                classes.append("infeasible")
        cells = []
        for col, _, scale, fmt in present:
            value = r.get(col)
            if col == "feasible" and r.get("state") == "failed":
                value = None  # never measured: neither feasible nor not
            cell = _cell(value, col, scale, fmt)
            if col == "name" and link_pareto and r.get("pareto"):
                cell = f"<td class='txt'><a href='#cfg-{int(r['trial'])}'>{esc(str(r['name']))}</a></td>"
            cells.append(cell)
        body.append(f"<tr class='{' '.join(classes)}'>" + "".join(cells) + "</tr>")
    cls = "sortable" if sortable else ""
    return (f"<div class='scroll' style='max-height:{max_height_px}px'><table id='{table_id}' class='{cls}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def knob_columns(frame: pd.DataFrame) -> list[tuple[str, str, float, str]]:
    return [(c, c[len(KNOB_PREFIX):], 1, "{}") for c in frame.columns if c.startswith(KNOB_PREFIX)]


def reference_table(data: StudyData) -> str:
    refs = pd.concat([f for f in (data.presets, data.baseline) if len(f)], ignore_index=True) \
        if len(data.presets) or len(data.baseline) else pd.DataFrame()
    if refs.empty:
        return "<p class='muted'>The study records no presets or baseline.</p>"
    cols = [c for c in DISPLAY_COLUMNS if c[0] not in ("trial", "state", "feasible", "duplicate_of", "duration_s", "reason")]
    note = ""
    if len(data.baseline) and _has(data.baseline, "det_macs"):
        name = esc(str(data.baseline["name"].iloc[0]))
        note = (f"<p class='caption'>{name}: the params, MACs and latency columns are its backbone alone, measured "
                "like the trials; the det columns are the whole detector.</p>")
    return table_html(refs, cols, table_id="refs", sortable=False, row_class=False) + note


def detector_table(data: StudyData) -> str:
    front, base = data.pareto, data.baseline
    has_det = _has(front, "det_macs") or _has(front, "det_latency_ms") or _has(front, "det_params")
    if not has_det:
        return ""
    ref = base.iloc[0].to_dict() if len(base) else {}
    base_name = str(ref.get("name", "baseline"))
    metrics = [("det_params", "det params M", 1e-6, "{:.2f}"), ("det_macs", "det MACs G", 1e-9, "{:.2f}"),
               ("det_flops", "det FLOPs G (2×MACs)", 1e-9, "{:.2f}"), ("det_latency_ms", "det latency ms", 1, "{:.1f}")]
    metrics = [m for m in metrics if _has(front, m[0])]
    ratio_cols = [m for m in metrics if _num(ref.get(m[0])) not in (None, 0.0) and m[0] != "det_flops"]
    context = [m for m in (("proxy_top1", "proxy top-1 %", 1, "{:.2f}"), ("latency_ms", "backbone ms", 1, "{:.2f}"))
               if _has(front, m[0])]
    head = "<th>model</th>" + "".join(f"<th title='{esc(column_doc(c))}'>{esc(h)}</th>" for c, h, _, _ in context) \
        + "".join(f"<th title='{esc(column_doc(c))}'>{esc(h)}</th>" for c, h, _, _ in metrics) \
        + "".join(f"<th>{esc(h.split(' ')[1])} vs {esc(base_name)}</th>" for _, h, _, _ in ratio_cols)
    rows = []
    if ref:
        rows.append("<tr class='ref'><td class='txt'><b>" + esc(base_name) + "</b></td>"
                    + "".join(_cell(ref.get(c), c, s, f) for c, _, s, f in context)
                    + "".join(_cell(ref.get(c), c, s, f) for c, _, s, f in metrics)
                    + "".join("<td class='num'>1.00×</td>" for _ in ratio_cols) + "</tr>")
    for r in front.to_dict("records"):
        ratios = []
        for c, _, _, _ in ratio_cols:
            v, b = _num(r.get(c)), _num(ref.get(c))
            ratios.append(f"<td class='num' data-v='{v / b!r}'>{v / b:.2f}×</td>" if v is not None and b else
                          "<td class='num' data-v=''>—</td>")
        rows.append(f"<tr><td class='txt'>{esc(str(r.get('name')))}</td>"
                    + "".join(_cell(r.get(c), c, s, f) for c, _, s, f in context)
                    + "".join(_cell(r.get(c), c, s, f) for c, _, s, f in metrics) + "".join(ratios) + "</tr>")
    det_imgsz = data.attrs.get("det_imgsz")
    caption = (f"Whole RT-DETR detector built on each Pareto backbone, at {esc(str(det_imgsz))} px"
               if det_imgsz else "Whole RT-DETR detector built on each Pareto backbone")
    caption += f" (the {esc(base_name)} row: its own backbone's numbers in the first columns)" if ref else ""
    if not ref:
        caption += "; no rtdetr_l baseline was recorded, so no ratios"
    return (f"<section id='detector'><h2>Detector-level cost vs {esc(base_name)}</h2>"
            f"<div class='scroll'><table id='det' class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div><p class='caption'>{caption}. "
            "Ratios below 1 mean cheaper or faster than the baseline.</p></section>")


def config_yaml(name: str, config: dict[str, Any]) -> str:
    doc = {"name": name, **config}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)


def configs_html(data: StudyData) -> str:
    if data.pareto.empty:
        return "<p class='muted'>No Pareto point yet.</p>"
    _, scale, short = _objective_axis(data.attrs)
    out = []
    for r in data.pareto.to_dict("records"):
        n = int(r["trial"])
        cfg = data.configs.get(n, {})
        lat, val = _num(r.get("latency_ms")), _num(r.get("value"))
        summary = f"{r['name']} — {r.get('family') or '?'}"
        if lat is not None:
            summary += f" · {lat:.2f} ms"
        if val is not None:
            summary += f" · {short} {val * scale:.2f}" + ("" if short != "MACs" else " G")
        out.append(
            f"<details class='cfg' id='cfg-{n}'><summary>{esc(summary)}</summary>"
            f"<div class='bar'><button type='button' class='copy' data-for='yaml-{n}'>copy</button></div>"
            f"<pre id='yaml-{n}'>{esc(config_yaml(str(r['name']), cfg))}</pre></details>")
    return "<div class='cfgs'>" + "".join(out) + "</div>" + ("<p class='caption'>Save one as <code>candidate.yaml</code> and run "
                           "<code>nasbench compare candidate.yaml</code> to measure it again.</p>")


def columns_html(frame: pd.DataFrame) -> str:
    rows = "".join(f"<tr><td><code>{esc(c)}</code></td><td class='txt' style='white-space:normal'>{esc(column_doc(c))}</td></tr>"
                   for c in frame.columns)
    return f"<table id='columns'><thead><tr><th>column</th><th>meaning and unit</th></tr></thead><tbody>{rows}</tbody></table>"


# ----------------------------------------------------------------------------- text
def summary_html(data: StudyData, storage_label: str | None) -> str:
    a, c = data.attrs, data.counts

    def dl(items: list[tuple[str, Any]]) -> str:
        shown = [(k, v) for k, v in items if v is not None and v != ""]
        return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(_txt(v))}</dd>" for k, v in shown) + "</dl>"

    budget = _num(a.get("budget_ms"))
    caps = ", ".join(x for x in (
        f"params ≤ {a['max_params'] / 1e6:g} M" if _num(a.get("max_params")) else "",
        f"MACs ≤ {a['max_macs'] / 1e9:g} G" if _num(a.get("max_macs")) else "") if x) or "none"
    run = dl([("space", a.get("space")), ("families", a.get("families")), ("target", a.get("target")),
              ("objective", objective_name(a)), ("latency budget", f"{budget:g} ms" if budget is not None else None),
              ("other caps", caps), ("backbone imgsz", f"{a['imgsz']} px" if a.get("imgsz") else None),
              ("detector imgsz", f"{a['det_imgsz']} px" if a.get("target") == "detector" and a.get("det_imgsz") else None)])
    cuda = a.get("cuda_version") or ("none" if a.get("device") == "cpu" else None)
    hw = dl([("device", a.get("device")), ("device name", a.get("device_name")), ("dtype", a.get("dtype")),
             ("threads", a.get("threads")), ("torch", a.get("torch_version")), ("CUDA", cuda),
             ("nasbench", a.get("nasbench_version")), ("storage", storage_label)])
    trials = dl([("trials run", c["run"]), ("complete, feasible", c["feasible"]),
                 ("complete, over budget/caps", c["infeasible"]), ("pruned", c["pruned"]), ("failed", c["failed"]),
                 ("still running", c["running"] or None), ("reused duplicates", c["duplicates"]),
                 ("on the Pareto front", len(data.pareto)), ("search wall time", _fmt_duration(a.get("wall_s")))])
    return (f"<section id='summary'><h2>Summary</h2><div class='cards'><div><h3>Search</h3>{run}</div>"
            f"<div><h3>Hardware and software</h3>{hw}</div><div><h3>Trials</h3>{trials}</div></div></section>")


def methodology_notes(data: StudyData) -> list[str]:
    a = data.attrs
    trials = data.trials
    first = trials[trials["latency_ms"].notna()].iloc[0].to_dict() if _has(trials, "latency_ms") else {}
    notes = [METHOD_NOTES[0], METHOD_NOTES[2]]
    if a.get("timing_what"):
        notes.append(f"Latency: {a['timing_what']}.")
    else:
        runs = first.get("latency_runs")
        notes.append(
            "Latency: median of " + (f"{runs} timed" if _num(runs) else "the timed")
            + f" forward passes per candidate after warm-up, batch {_txt(first.get('batch', 1))}, "
            f"{_txt(a.get('imgsz'))}×{_txt(a.get('imgsz'))} px input, {_txt(a.get('dtype'))}, on "
            f"{_txt(a.get('device_name'))} ({_txt(a.get('device'))}, {_txt(a.get('threads'))} threads), "
            f"torch {_txt(a.get('torch_version'))}. latency_p10_ms / latency_p90_ms give the spread. "
            "Timings from another machine, thread count or dtype are not comparable.")
    budget = _num(a.get("budget_ms"))
    if budget is not None:
        notes.append(f"Budget: a candidate whose median latency exceeded {budget:g} ms (or a params/MACs cap) is "
                     "infeasible; it is measured but never trained and never on the Pareto front.")
    proxy = a.get("proxy")
    if not proxy:
        notes.append("No proxy training (cost-only search, --no-train): the objective is MACs under the latency "
                     "budget, i.e. the most computation that fits, as a stand-in for capacity. Accuracy was not "
                     "estimated at all.")
    else:
        notes.append(f"Proxy task: {_txt(proxy.get('data'))}; {_txt(proxy.get('steps'))} training steps at "
                     f"{_txt(proxy.get('imgsz'))} px, batch {_txt(proxy.get('batch'))}, seed {_txt(proxy.get('seed'))}. "
                     "proxy_top1 is top-1 accuracy on that task's validation split, in %.")
        if proxy.get("synthetic"):
            notes.append("The proxy data was SYNTHETIC (generated, not real images). proxy_top1 only says how fast "
                         "a candidate learns a toy task; it says nothing about ImageNet or COCO accuracy.")
    notes.append("Pareto front: completed feasible trials that no other such trial beats on both latency (lower) and "
                 "the objective (higher). A config sampled twice is measured once; later copies reuse the "
                 "measurement (duplicate_of) and are not counted again.")
    notes.append("Knob importances: Optuna's PED-ANOVA evaluator, which scores how differently each knob is "
                 "distributed among the best 10% of trials than among all of them (normalised to sum to 1). The "
                 "objective series uses feasible completed trials; the latency series every timed trial. Knobs "
                 "that only some families have are scored over the trials that have them.")
    if _has(trials, "det_macs") or _has(trials, "det_latency_ms"):
        notes.append(f"Detector-level cost: the RT-DETR head on top of each backbone, counted and timed the same "
                     f"way at {_txt(a.get('det_imgsz'))} px; rtdetr_l is the same measurement of the reference "
                     "model.")
    return notes


def render_study_html(data: StudyData, *, storage_label: str | None = None, generated: datetime | None = None) -> str:
    a = data.attrs
    generated = generated or datetime.now(timezone.utc)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
    _, _, short = _objective_axis(a)
    budget = _num(a.get("budget_ms"))
    sub = " · ".join(x for x in (
        f"space {_txt(a.get('space'))}", f"families {_txt(a.get('families'))}", f"target {_txt(a.get('target'))}",
        f"budget {budget:g} ms" if budget is not None else "",
        f"{_txt(a.get('device_name'))} ({_txt(a.get('device'))}, {_txt(a.get('dtype'))}, {_txt(a.get('threads'))} threads)",
    ) if x)
    warn = ""
    if (a.get("proxy") or {}).get("synthetic"):
        warn = ("<div class='warn'><b>Synthetic proxy data.</b> The accuracy axis comes from training on generated "
                "images, not a real dataset: use it to rank candidates, not as an accuracy estimate.</div>")
    elif not a.get("proxy"):
        warn = ("<div class='warn'><b>Cost-only search.</b> No candidate was trained; the objective is MACs that fit "
                "the latency budget, not accuracy.</div>")
    imp = data.importances
    imp_body = ""
    if imp.objective or imp.latency:
        imp_body = (f"<div class='imp'>{importance_plot(data)}<div class='caption'><p>How much each knob decides "
                    f"whether a trial lands among the best 10%: blue by {esc(short)}, orange by latency. A knob "
                    "with a long orange and a short blue bar buys speed at little cost in the objective.</p>"
                    "<p>Scores are relative within each series (they sum to 1) and come from the trials run so "
                    "far; with few trials they are noisy.</p></div></div>")
    imp_note = f"<p class='caption'>{esc(imp.note)}</p>" if imp.note else ""
    trial_cols = list(DISPLAY_COLUMNS) + knob_columns(data.trials)
    pareto_cols = [c for c in trial_cols if c[0] not in ("state", "feasible", "duplicate_of", "reason")]
    det = detector_table(data)
    front_svg, front_off = pareto_plot(data)
    cost_svg, cost_off = macs_latency_plot(data)
    nav = [("summary", "Summary"), ("pareto", "Pareto front"), ("cost", "MACs vs latency"), ("history", "History"),
           ("importance", "Knob importances")] + ([("detector", "Detector vs rtdetr_l")] if det else []) + \
        [("configs", "Pareto configs"), ("trials", "All trials"), ("columns", "CSV columns"), ("method", "Methodology")]
    notes = "".join(f"<li>{esc(n)}</li>" for n in methodology_notes(data))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(data.name)} — nasbench search report</title><style>{STYLE}</style></head><body><main>"
        f"<header><div class='kicker'>nasbench search report</div><h1 id='study-name'>{esc(data.name)}</h1>"
        f"<p class='sub'>{esc(sub)}</p></header>"
        "<nav>" + "".join(f"<a href='#{k}'>{esc(v)}</a>" for k, v in nav) + "</nav>" + warn
        + summary_html(data, storage_label)
        + f"<section id='pareto'><h2>Pareto front: {esc(short)} vs latency</h2>{front_svg}"
        "<p class='caption'>Blue: the Pareto front (hover a point for its numbers). Grey: other feasible trials. "
        f"Diamonds: named presets measured the same way. Dashed line: the latency budget.{esc(front_off)}</p>"
        f"<h3>Pareto set ({len(data.pareto)} trials, fastest first)</h3>"
        + table_html(data.pareto, pareto_cols, table_id="pareto-table", link_pareto=True, row_class=False,
                     max_height_px=400)
        + "<h3>Reference points</h3>" + reference_table(data) + "</section>"
        + f"<div class='grid2'><section id='cost'><h2>MACs vs latency by family</h2>{cost_svg}"
        f"<p class='caption'>Every measured trial, coloured by family; diamonds are presets.{esc(cost_off)}</p></section>"
        f"<section id='history'><h2>Optimisation history</h2>{history_plot(data)}"
        "<p class='caption'>Objective of each feasible trial in the order they ran, and the best so far.</p>"
        "</section></div><div style='height:18px'></div>"
        f"<section id='importance'><h2>Knob importances</h2>{imp_body}{imp_note}</section>"
        + det
        + f"<section id='configs'><h2>Pareto configs</h2>{configs_html(data)}</section>"
        + f"<section id='trials'><h2>All trials ({len(data.trials)})</h2>"
        "<p class='caption' style='margin:0 0 8px'>Click a header to sort. Blue rows are on the Pareto front, grey "
        "rows are over budget or pruned, red rows failed. Full precision is in <code>trials.csv</code>.</p>"
        + table_html(data.trials, trial_cols, table_id="trials-table", link_pareto=True) + "</section>"
        + f"<section id='columns'><h2>CSV columns</h2><p class='caption' style='margin:0 0 8px'><code>trials.csv"
        "</code> has one row per trial, <code>pareto.csv</code> the Pareto rows; plain numbers in the units the "
        f"names say.</p>{columns_html(data.trials)}</section>"
        + f"<section id='method'><h2>Methodology</h2><ul class='notes'>{notes}</ul></section>"
        + f"<p class='muted'>Generated {esc(generated.strftime('%Y-%m-%d %H:%M UTC'))} by nasbench "
        f"{esc(_txt(a.get('nasbench_version')))}.</p>"
        f"</main><script>{SCRIPT}</script></body></html>"
    )


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
        "trials.csv": data.trials.to_csv(index=False),
        "pareto.csv": data.pareto.to_csv(index=False),
        "index.html": render_study_html(data, storage_label=storage_label),
    }
    return [atomic_write_text(out_dir / name, text) for name, text in texts.items()]
