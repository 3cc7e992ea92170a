"""The one page writer of nasbench reports: a search study's page and a comparison's page.

Both are one self-contained HTML file that works from ``file://`` with no network:
styles, the tiny table-sorting script and every plot (inline SVG) are inside the file,
and a Content-Security-Policy forbids loading anything else and running any script
but ours (pinned by hash). Every string that reaches the markup is escaped here or in
``svg``. Each report renders its files in memory first and then replaces each one
atomically, pages last, so an interrupted run leaves the previous report as it was.

The study page (``study_html``) and the comparison page (``compare_html``) differ only
in their sections; the shell, tables, config blocks, column docs and methodology notes
below are shared.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml
from markupsafe import Markup

from nasbench.report.files import write_together
from nasbench.report.schema import column_doc
from nasbench.report.svg import PALETTE, SVG_STYLE
from nasbench.report.table import format_cell

Column = tuple[str, str, float, str]  # (column, header, display scale, format), as in schema.TERMINAL_COLUMNS

# The page's stylesheet and its one script ship as files beside the templates; the script's
# hash goes into the Content-Security-Policy, so it must be the exact text the page holds.
STYLE = (resources.files("nasbench.report") / "templates" / "report.css").read_text(encoding="utf-8")
SCRIPT = (resources.files("nasbench.report") / "templates" / "report.js").read_text(encoding="utf-8").rstrip("\n")
TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("nasbench.report", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)


def macros(template: str) -> Any:
    """The macros of one template, callable from Python; each returns escaped markup."""
    return TEMPLATES.get_template(template).module


BASELINE_COLOR = "#D55E00"
MACS_AXIS = "MACs per image, G (FLOPs = 2 × MACs)"

# ----------------------------------------------------------------------------- methodology (one source)
MACS_NOTE = ("MACs: multiply-accumulates per image counted by torch's FlopCounterMode on the meta device "
             "(conv, linear, matmul/bmm/einsum, scaled-dot-product attention, grid_sample). "
             "FLOPs = 2 × MACs. Normalisation, activations and softmax are not counted, except the two "
             "slope multiplies per activation of Mobile-Former's dynamic ReLU, which its paper counts.")
CROSSCHECK_NOTE = ("fvcore and thop columns are the counts those tools give for the same model and input; "
                   "they are cross-checks, not used for decisions (fvcore skips scaled_dot_product_attention, "
                   "thop sees only module hooks).")
DEPLOY_NOTE = ("Params and MACs are of the deploy form (BN folded, re-parameterised branches merged) where a family "
               "has one; params_train_form is the training form most papers quote.")
TIMING_CAVEAT = "Timings from another machine, thread count or dtype are not comparable."


def detector_note(det_imgsz: Any, timed: str = "") -> str:
    return (f"Detector-level cost: the RT-DETR head (rtdetr-l neck + decoder) on the three deepest levels of each "
            f"backbone, counted and timed the same way at {as_text(det_imgsz)} px; rtdetr_l is the same measurement "
            "of the reference model." + (f" Timed: {timed}." if timed else ""))


# ----------------------------------------------------------------------------- values
def num(v: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN)."""
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def column_values(frame: pd.DataFrame, name: str) -> list[float | None]:
    if name not in frame.columns:
        return [None] * len(frame)
    return [num(v) for v in frame[name].tolist()]


def scaled(values: list[float | None], scale: float) -> list[float | None]:
    return [None if v is None else v * scale for v in values]


def has_values(frame: pd.DataFrame, col: str) -> bool:
    return col in frame.columns and bool(frame[col].notna().any())


def duration_text(seconds: Any) -> str:
    s = num(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s"


def as_text(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def family_colors(families: Sequence[str]) -> dict[str, str]:
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(dict.fromkeys(families))}


# ----------------------------------------------------------------------------- blocks
# Python prepares values (text, sort keys, anchors); the templates hold every tag.
@dataclass(frozen=True)
class Cell:
    """One table cell: ``kind`` picks its markup in blocks.html.j2 (num, flag, link, bold, txt)."""

    text: str
    kind: str = "txt"
    sort_key: str | None = None  # data-v: the raw number the table sorts by ('' = missing)
    link: str | None = None  # in-page anchor (kind "link")


@dataclass(frozen=True)
class Header:
    text: str
    doc: str = ""  # the column's meaning and unit, shown on hover


@dataclass(frozen=True)
class Row:
    cells: Sequence[Cell]
    classes: Sequence[str] = ()


@dataclass(frozen=True)
class TableView:
    id: str
    headers: Sequence[Header]
    rows: Sequence[Row]
    sortable: bool = True
    max_height_px: int | None = None  # None: no scrolling box


@dataclass(frozen=True)
class ConfigBlock:
    """A collapsible, copyable config (anchor ``cfg-<key>``)."""

    key: str
    summary: str
    yaml: str


BLOCKS = macros("blocks.html.j2")


def cards_html(cards: Sequence[tuple[str, Sequence[tuple[str, Any]]]]) -> Markup:
    """Summary cards: a heading and a definition list each; empty values are left out."""
    groups = [(heading, [(k, as_text(v)) for k, v in items if v is not None and v != ""]) for heading, items in cards]
    return BLOCKS.cards(groups)


def cell(value: Any, col: str, scale: float, fmt: str) -> Cell:
    """One table cell; numbers carry their raw value in data-v so the table sorts numerically."""
    if col == "feasible" and value is not None and value is not pd.NA:
        yes = bool(value)
        return Cell("yes" if yes else "no", "flag", str(int(yes)))
    v = None if isinstance(value, (str, bool)) else num(value)
    shown = format_cell(value, scale, fmt)
    if v is not None:
        return Cell(shown, "num", repr(v))
    if shown == "—" and col not in ("name", "family", "source", "state", "reason"):
        return Cell("—", "num", "")
    return Cell(shown)


def present_columns(frame: pd.DataFrame, columns: Sequence[Column]) -> list[Column]:
    return [c for c in columns if has_values(frame, c[0])]


def column_headers(columns: Sequence[Column]) -> list[Header]:
    return [Header(h, column_doc(c) or c) for c, h, _, _ in columns]


def table_html(frame: pd.DataFrame, columns: Sequence[Column], *, table_id: str, sortable: bool = True,
               row_classes: Callable[[dict[str, Any]], Sequence[str]] | None = None,
               name_link: Callable[[dict[str, Any]], str | None] | None = None, max_height_px: int = 720) -> Markup:
    """A table of result rows: the columns that have values, headers documented by the schema.

    ``row_classes`` gives each row's CSS classes; ``name_link`` an in-page anchor for its name.
    """
    present = present_columns(frame, columns)
    rows = []
    for r in frame.to_dict("records"):
        cells = []
        for col, _, scale, fmt in present:
            value = r.get(col)
            if col == "feasible" and r.get("state") == "failed":
                value = None  # never measured: neither feasible nor not
            anchor = name_link(r) if col == "name" and name_link is not None else None
            cells.append(Cell(str(value), "link", link=anchor) if anchor else cell(value, col, scale, fmt))
        rows.append(Row(cells, row_classes(r) if row_classes is not None else ()))
    return BLOCKS.table(TableView(table_id, column_headers(present), rows, sortable, max_height_px))


def columns_html(frame: pd.DataFrame) -> Markup:
    return BLOCKS.columns([(c, column_doc(c)) for c in frame.columns])


def config_yaml(name: str, config: Mapping[str, Any]) -> str:
    """A config as the YAML `nasbench compare` reads back (``name``, ``family``, knobs)."""
    doc = {"name": name, **config}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)


def config_block(key: str, summary: str, name: str, config: Mapping[str, Any]) -> ConfigBlock:
    return ConfigBlock(key, summary, config_yaml(name, config))


def configs_grid(blocks: Sequence[ConfigBlock]) -> Markup:
    return BLOCKS.configs(blocks)


def notes_html(notes: Sequence[str]) -> Markup:
    return BLOCKS.notes(notes)


# ----------------------------------------------------------------------------- page
@dataclass(frozen=True)
class Section:
    """One section of a page (and its entry in the navigation bar)."""

    id: str
    nav: str
    title: str  # the heading, escaped when rendered
    body: Markup | str  # markup from a template; a section with an empty body is left out of the page
    half: bool = False  # two consecutive half sections share one row


def section_rows(sections: Sequence[Section]) -> list[list[Section]]:
    """Sections grouped into page rows: two consecutive half sections share one; an unpaired half takes a row."""
    rows: list[list[Section]] = []
    pending: list[Section] = []
    for s in sections:
        if s.half:
            pending.append(s)
            if len(pending) == 2:
                rows.append(pending)
                pending = []
            continue
        rows.extend([p] for p in pending)
        pending = []
        rows.append([s])
    return rows + [[p] for p in pending]


def render_page(*, kind: str, title: str, title_id: str, sub: str, sections: Sequence[Section],
                banner: Markup | str = "", version: str = "", generated: datetime | None = None) -> str:
    """The whole page: header, navigation, ``banner`` (template markup), sections, footer, script."""
    generated = generated or datetime.now(timezone.utc)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
    rows = section_rows([s for s in sections if s.body])
    return TEMPLATES.get_template("page.html.j2").render(
        kind=kind, title=title, title_id=title_id, sub=sub, rows=rows, banner=banner, version=version,
        csp=Markup(csp),  # constants and a base64 hash: nothing to escape, kept readable
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"), style=Markup(STYLE + SVG_STYLE),  # plots' classes
        script=Markup(SCRIPT))


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Replace every file atomically; HTML pages last, so a page is never newer than the CSVs it points to."""
    order = sorted(files, key=lambda p: p.suffix == ".html")  # stable: CSVs in the order given, then pages
    return write_together({Path(p): files[p] for p in order})
