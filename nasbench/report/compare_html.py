"""The comparison report of `nasbench compare` / `nasbench baseline`: index.html and compare.csv.

The page comes from the same writer as the search report (``page``): same shell, tables,
config blocks, column docs and methodology notes. A comparison has no Pareto front,
history or importances, so those sections do not exist here; the detector section is
there only when the rows have det_* columns (``compare --detector``, ``baseline``).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from nasbench import __version__
from nasbench.report.files import csv_text, ensure_writable_dir
from nasbench.report.page import (
    BASELINE_COLOR,
    CROSSCHECK_NOTE,
    DEPLOY_NOTE,
    MACS_AXIS,
    MACS_NOTE,
    TIMING_CAVEAT,
    Column,
    Section,
    as_text,
    cards_html,
    column_values,
    columns_html,
    config_block,
    configs_grid,
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
from nasbench.report.schema import DETECTOR_TERMINAL_COLUMNS, TERMINAL_COLUMNS
from nasbench.report.svg import Series, View, scatter_svg

if TYPE_CHECKING:  # the comparison module imports torch and the zoo; the page needs only its types
    from nasbench.comparison import Comparison, RunContext

BASELINE_SOURCE = "baseline"  # the schema's `source` of the rtdetr_l reference row
_T = {c[0]: c for c in TERMINAL_COLUMNS}
# The study's trial-table order (latency first, then cost) and the terminal's headers and formats.
RESULT_COLUMNS: list[Column] = [
    _T["name"], _T["family"], _T["imgsz"], _T["latency_ms"], _T["latency_p10_ms"], _T["latency_p90_ms"],
    ("latency_runs", "runs", 1, "{:d}"), _T["params"], _T["params_train_form"], _T["macs"], _T["flops"],
    _T["macs_fvcore"], _T["macs_thop"], ("peak_mem_mb", "peak mem MiB", 1, "{:.1f}"), _T["published_top1"],
    _T["est_top1"], _T["est_error_points"], _T["est_score"], ("estimator", "estimator", 1, "{}"),
    ("source", "source", 1, "{}"),
]
DETECTOR_COLUMNS: list[Column] = [*DETECTOR_TERMINAL_COLUMNS, ("det_latency_runs", "det runs", 1, "{:d}"),
                                  ("det_peak_mem_mb", "det peak mem MiB", 1, "{:.1f}")]
PAGE = macros("compare.html.j2")  # the section markup
DELTA_NOTE = "Δ % = 100 × (value / rtdetr_l's − 1): negative means smaller, cheaper or faster than rtdetr_l"


# ----------------------------------------------------------------------------- small helpers
def _distinct(frame: pd.DataFrame, col: str) -> list[str]:
    return list(dict.fromkeys(as_text(v) for v in frame[col])) if col in frame.columns else []


def _title(names: Sequence[str]) -> str:
    if len(names) <= 4:
        return " vs ".join(names)
    return ", ".join(names[:3]) + f" and {len(names) - 3} more"


def _imgsz_text(frame: pd.DataFrame) -> str:
    sizes = _distinct(frame, "imgsz")
    if len(sizes) == 1:
        return f"{sizes[0]} px"
    return "per model: " + ", ".join(f"{n} {s} px" for n, s in zip(frame["name"], frame["imgsz"]))


def _is_baseline(r: dict[str, Any]) -> bool:
    return r.get("source") == BASELINE_SOURCE


def _tip(r: dict[str, Any], lat_col: str, macs_col: str, params_col: str, imgsz_col: str) -> str:
    lat, macs, params = num(r.get(lat_col)), num(r.get(macs_col)), num(r.get(params_col))
    parts = [str(r.get("name")), str(r.get("family") or ""),
             f"{lat:.2f} ms" if lat is not None else "", f"{macs / 1e9:.3f} GMACs" if macs is not None else "",
             f"{params / 1e6:.2f} M params" if params is not None else "",
             f"{as_text(r.get(imgsz_col))} px" if r.get(imgsz_col) is not None else ""]
    return " · ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- plots
def cost_plot(frame: pd.DataFrame, *, x_col: str, x_scale: float, x_label: str, y_col: str, y_label: str,
              plot_id: str, title: str, detector: bool = False) -> str:
    """One labelled point per model, coloured by family; the rtdetr_l reference is a star.

    Both axes start at zero: with a handful of models, ratios between them are what the
    reader judges, and a range fitted to the points would exaggerate small differences.
    """
    prefix = "det_" if detector else ""
    colors = family_colors([str(f) for f, s in zip(frame["family"], frame["source"]) if s != BASELINE_SOURCE])
    series = []
    for fam in dict.fromkeys(str(f) for f in frame["family"]):
        sub = frame[frame["family"].astype(str) == fam]
        records = sub.to_dict("records")
        ref = all(_is_baseline(r) for r in records)
        legend = (f"{fam}: rtdetr-l detector (reference)" if detector else f"{fam}: rtdetr_l's HGNetv2-L backbone") \
            if ref else fam
        series.append(Series(
            legend, scaled(column_values(sub, x_col), x_scale), column_values(sub, y_col),
            BASELINE_COLOR if ref else colors[fam], marker="star" if ref else "circle", size=5 if ref else 4.5,
            labels=[str(r["name"]) for r in records],
            tips=[_tip(r, *(prefix + c for c in ("latency_ms", "macs", "params", "imgsz"))) for r in records]))
    xs = [x for s in series for x, y in zip(s.xs, s.ys) if x is not None and y is not None]
    ys = [y for s in series for x, y in zip(s.xs, s.ys) if x is not None and y is not None]
    view = View(610, 440, x_range=(0.0, max(xs) * 1.15) if xs and max(xs) > 0 else None,
                y_range=(0.0, max(ys) * 1.1) if ys and max(ys) > 0 else None)
    return scatter_svg(series, x_label=x_label, y_label=y_label, plot_id=plot_id, title=title, view=view,
                       empty_text="no model has both numbers")


def _latency_label(frame: pd.DataFrame, *, detector: bool = False) -> str:
    first = frame.iloc[0]
    what = "detector" if detector else "backbone"
    return f"{what} latency, ms (median, {as_text(first['device'])}, {as_text(first['dtype'])})"


# ----------------------------------------------------------------------------- sections
def summary_html(frame: pd.DataFrame, run: RunContext) -> Markup:
    first = frame.iloc[0]
    det = has_values(frame, "det_params")
    folded = int(frame["deploy_form"].astype(bool).sum()) if "deploy_form" in frame.columns else None
    models = [("models", f"{len(frame)}: " + ", ".join(str(n) for n in frame["name"])),
              ("families", _distinct(frame, "family")), ("input size", _imgsz_text(frame)),
              ("batch (timing)", first.get("batch")),
              ("folded for deploy", f"{folded} of {len(frame)} models" if folded is not None else None),
              ("detector input", f"{as_text(first.get('det_imgsz'))} px" if det else None)]
    cuda = first.get("cuda_version")
    if as_text(cuda) == "—":  # missing: no CUDA on a CPU run
        cuda = "none" if first.get("device") == "cpu" else None
    hw = [("device", first.get("device")), ("device name", first.get("device_name")), ("dtype", first.get("dtype")),
          ("threads", first.get("threads")), ("torch", first.get("torch_version")), ("CUDA", cuda),
          ("python", platform.python_version()), ("nasbench", __version__)]
    runs = [int(v) for v in column_values(frame, "latency_runs") if v is not None]
    taken = (f"{min(runs)}" if min(runs) == max(runs) else f"{min(runs)}–{max(runs)}") if runs else None
    asked = run.runs_asked
    crosscheck = has_values(frame, "macs_fvcore") or has_values(frame, "macs_thop")
    measurement = [("MAC counter", _distinct(frame, "counter")),
                   ("cross-check", "fvcore, thop" if crosscheck else "off (--no-crosscheck)"),
                   ("warm-up runs", run.warmup_runs),
                   ("timed runs per model", f"{taken} (asked {asked})" if taken and asked else taken),
                   ("time limit", f"{run.time_limit_s:g} s for all timing" if num(run.time_limit_s) else None),
                   ("wall time", duration_text(run.wall_s))]
    return cards_html([("Models", models), ("Hardware and software", hw), ("Measurement", measurement)])


def results_html(frame: pd.DataFrame, anchors: dict[str, str]) -> Markup:
    validity = None
    if has_values(frame, "estimator"):
        from nasbench.estimate import validity_line

        validity = validity_line(_distinct(frame, "estimator")[0])
    table = table_html(frame, RESULT_COLUMNS, table_id="results-table", row_classes=_row_classes,
                       name_link=lambda r: anchors.get(str(r.get("name"))))
    return PAGE.results(table, validity, len(_distinct(frame, "imgsz")) == 1)


def _row_classes(r: dict[str, Any]) -> list[str]:
    return ["ref"] if _is_baseline(r) else []


def detector_html(frame: pd.DataFrame) -> Markup | str:
    if not has_values(frame, "det_params"):
        return ""
    y_label = _latency_label(frame, detector=True)
    macs = cost_plot(frame, x_col="det_macs", x_scale=1e-9, x_label=f"detector {MACS_AXIS}", y_col="det_latency_ms",
                     y_label=y_label, plot_id="plot-det-macs-latency", title="Detector MACs vs latency", detector=True)
    params = cost_plot(frame, x_col="det_params", x_scale=1e-6, x_label="detector parameters, M (deploy form)",
                       y_col="det_latency_ms", y_label=y_label, plot_id="plot-det-params-latency",
                       title="Detector params vs latency", detector=True)
    table = table_html(frame, DETECTOR_COLUMNS, table_id="det", row_classes=_row_classes)
    return PAGE.detector(table, as_text(frame["det_imgsz"].iloc[0]), DELTA_NOTE, Markup(macs), Markup(params))


def configs_html(frame: pd.DataFrame, configs: dict[str, dict], anchors: dict[str, str]) -> Markup | str:
    blocks = []
    for r in frame.to_dict("records"):
        name = str(r["name"])
        if name not in configs:
            continue
        lat, macs = num(r.get("latency_ms")), num(r.get("macs"))
        summary = f"{name} — {r.get('family')}" + (f" · {lat:.2f} ms" if lat is not None else "") \
            + (f" · {macs / 1e9:.3f} GMACs" if macs is not None else "")
        blocks.append(config_block(anchors[name][len("cfg-"):], summary, name, configs[name]))
    return configs_grid(blocks) if blocks else ""


def methodology_notes(frame: pd.DataFrame, run: RunContext) -> list[str]:
    notes = [MACS_NOTE, DEPLOY_NOTE]
    if has_values(frame, "macs_fvcore") or has_values(frame, "macs_thop"):
        notes.append(CROSSCHECK_NOTE)
    notes.append(f"Latency: {run.timing_what}; {run.warmup_runs} warm-up runs per model, "
                 f"then up to {run.runs_asked} timed runs (latency_runs says how many were taken), "
                 "split into alternating rounds across the models so machine drift hits all alike. latency_ms is the "
                 "median, latency_p10_ms / latency_p90_ms the spread. " + TIMING_CAVEAT)
    if len(_distinct(frame, "imgsz")) > 1:
        notes.append("Input sizes differ between models (each family's native size unless --imgsz is given): compare "
                     "MACs and latency only at equal imgsz.")
    notes.append("No proxy task: a comparison trains nothing and estimates no accuracy, it measures cost and speed "
                 "only. Accuracy ranks come from nasbench search (proxy training) or nasbench train.")
    if has_values(frame, "det_params"):
        notes.append(detector_note(frame["det_imgsz"].iloc[0], as_text(run.det_timing_what))
                     + f" {DELTA_NOTE}.")
    return notes


# ----------------------------------------------------------------------------- page and files
def _subtitle(frame: pd.DataFrame) -> str:
    first, n = frame.iloc[0], len(frame)
    sizes = _imgsz_text(frame) if len(_distinct(frame, "imgsz")) == 1 else "input sizes differ"
    device = (f"{as_text(first['device_name'])} ({as_text(first['device'])}, {as_text(first['dtype'])}, "
              f"{as_text(first['threads'])} threads)")
    return " · ".join((f"{n} model{'s' if n != 1 else ''}", sizes, device, f"batch {as_text(first['batch'])}"))


def _cost_sections(frame: pd.DataFrame) -> list[Section]:
    """The two half-width plots: MACs and params against latency."""
    macs = cost_plot(frame, x_col="macs", x_scale=1e-9, x_label=MACS_AXIS, y_col="latency_ms",
                     y_label=_latency_label(frame), plot_id="plot-macs-latency", title="MACs vs latency by family")
    params = cost_plot(frame, x_col="params", x_scale=1e-6, x_label="parameters, M (deploy form)", y_col="latency_ms",
                       y_label=_latency_label(frame), plot_id="plot-params-latency",
                       title="Params vs latency by family")
    baseline = bool((frame["source"] == BASELINE_SOURCE).any())
    return [Section("cost", "MACs vs latency", "MACs vs latency by family", PAGE.plot(Markup(macs), baseline),
                    half=True),
            Section("params", "Params vs latency", "Params vs latency by family", PAGE.plot(Markup(params), baseline),
                    half=True)]


def render_compare_html(result: Comparison, *, command: str = "compare", generated: datetime | None = None) -> str:
    """The comparison page of a comparison (as `compare_models` returns it)."""
    frame, run = result.frame, result.run
    names = [str(n) for n in frame["name"]]
    anchors = {n: f"cfg-{i}" for i, n in enumerate(names) if n in run.configs}
    limited = [c for c in ("time_limited", "det_time_limited") if c in frame.columns and frame[c].astype(bool).any()]
    sections = [
        Section("summary", "Summary", "Summary", summary_html(frame, run)),
        Section("results", "Results", f"Results ({len(names)} model{'s' if len(names) != 1 else ''})",
                results_html(frame, anchors)),
        *_cost_sections(frame),
        Section("detector", "Detector vs rtdetr_l", "Detector-level cost vs rtdetr_l", detector_html(frame)),
        Section("configs", "Model configs", "Model configs", configs_html(frame, run.configs, anchors)),
        Section("columns", "CSV columns", "CSV columns", PAGE.columns(columns_html(frame))),
        Section("method", "Methodology", "Methodology", notes_html(methodology_notes(frame, run))),
    ]
    return render_page(kind=command, title=_title(names), title_id="report-title", sub=_subtitle(frame),
                       sections=sections, banner=PAGE.time_limit_banner() if limited else "", version=__version__,
                       generated=generated)


def write_compare_report(result: Comparison, out_dir: Path, *, csv_path: Path | None = None,
                         command: str = "compare") -> list[Path]:
    """Write ``compare.csv`` (and ``csv_path`` if given) and ``index.html`` into ``out_dir``, each atomically.

    Everything is rendered in memory first and the page is replaced last, so an
    interrupted run leaves the previous report as it was.
    """
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir, "report directory")
    table = csv_text(result.frame)
    files = {out_dir / "compare.csv": table}
    if csv_path is not None:
        files[Path(csv_path)] = table
    files[out_dir / "index.html"] = render_compare_html(result, command=command)
    return write_files(files)
