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
import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nasbench.report.files import write_together
from nasbench.report.schema import column_doc
from nasbench.report.svg import PALETTE
from nasbench.report.table import format_cell

esc = html.escape
Column = tuple[str, str, float, str]  # (column, header, display scale, format), as in schema.TERMINAL_COLUMNS

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
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px;margin:0 0 18px}
.grid2>section{margin:0}
svg.plot{max-width:100%;height:auto;display:block}
.caption{color:#5b6472;font-size:13px;margin:6px 0 0}
.scroll{overflow:auto;border:1px solid #eceef1;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:max-content;min-width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eceef1;white-space:nowrap}
th{background:#f0f2f5;text-align:left;position:sticky;top:0;z-index:1;white-space:normal;vertical-align:bottom;min-width:44px;max-width:100px}
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
})();"""  # noqa: E501  (long lines inside this string: wrapping would change the script)

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
def cards_html(cards: Sequence[tuple[str, Sequence[tuple[str, Any]]]]) -> str:
    """Summary cards: a heading and a definition list each; empty values are left out."""
    out = []
    for heading, items in cards:
        shown = [(k, v) for k, v in items if v is not None and v != ""]
        rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(as_text(v))}</dd>" for k, v in shown)
        out.append(f"<div><h3>{esc(heading)}</h3><dl>{rows}</dl></div>")
    return "<div class='cards'>" + "".join(out) + "</div>"


def cell(value: Any, col: str, scale: float, fmt: str) -> str:
    """One table cell; numbers carry their raw value in data-v so the table sorts numerically."""
    if col == "feasible" and value is not None and value is not pd.NA:
        yes = bool(value)
        return f"<td data-v='{int(yes)}'>{'yes' if yes else 'no'}</td>"
    v = None if isinstance(value, (str, bool)) else num(value)
    shown = format_cell(value, scale, fmt)
    if v is not None:
        return f"<td class='num' data-v='{v!r}'>{esc(shown)}</td>"
    if shown == "—" and col not in ("name", "family", "source", "state", "reason"):
        return "<td class='num' data-v=''>—</td>"
    return f"<td class='txt' title='{esc(shown)}'>{esc(shown)}</td>"


def present_columns(frame: pd.DataFrame, columns: Sequence[Column]) -> list[Column]:
    return [c for c in columns if has_values(frame, c[0])]


def table_html(frame: pd.DataFrame, columns: Sequence[Column], *, table_id: str, sortable: bool = True,
               row_classes: Callable[[dict[str, Any]], Sequence[str]] | None = None,
               name_link: Callable[[dict[str, Any]], str | None] | None = None, max_height_px: int = 720) -> str:
    """A table of result rows: the columns that have values, headers documented by the schema.

    ``row_classes`` gives each row's CSS classes; ``name_link`` an in-page anchor for its name.
    """
    present = present_columns(frame, columns)
    head = "".join(f"<th title='{esc(column_doc(c) or c)}'>{esc(h)}</th>" for c, h, _, _ in present)
    body = []
    for r in frame.to_dict("records"):
        cells = []
        for col, _, scale, fmt in present:
            value = r.get(col)
            if col == "feasible" and r.get("state") == "failed":
                value = None  # never measured: neither feasible nor not
            anchor = name_link(r) if col == "name" and name_link is not None else None
            cells.append(f"<td class='txt'><a href='#{esc(anchor)}'>{esc(str(value))}</a></td>" if anchor
                         else cell(value, col, scale, fmt))
        classes = " ".join(row_classes(r)) if row_classes is not None else ""
        body.append(f"<tr class='{classes}'>" + "".join(cells) + "</tr>")
    cls = "sortable" if sortable else ""
    return (f"<div class='scroll' style='max-height:{max_height_px}px'><table id='{table_id}' class='{cls}'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def columns_html(frame: pd.DataFrame) -> str:
    rows = "".join(f"<tr><td><code>{esc(c)}</code></td><td class='txt' style='white-space:normal'>{esc(column_doc(c))}"
                   "</td></tr>" for c in frame.columns)
    return ("<table id='columns'><thead><tr><th>column</th><th>meaning and unit</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def config_yaml(name: str, config: Mapping[str, Any]) -> str:
    """A config as the YAML `nasbench compare` reads back (``name``, ``family``, knobs)."""
    doc = {"name": name, **config}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)


def config_details(key: str, summary: str, name: str, config: Mapping[str, Any]) -> str:
    """A collapsible, copyable config block (anchor ``cfg-<key>``)."""
    return (f"<details class='cfg' id='cfg-{esc(key)}'><summary>{esc(summary)}</summary>"
            f"<div class='bar'><button type='button' class='copy' data-for='yaml-{esc(key)}'>copy</button></div>"
            f"<pre id='yaml-{esc(key)}'>{esc(config_yaml(name, config))}</pre></details>")


def configs_grid(blocks: Sequence[str]) -> str:
    return ("<div class='cfgs'>" + "".join(blocks) + "</div><p class='caption'>Save one as <code>candidate.yaml"
            "</code> and run <code>nasbench compare candidate.yaml</code> to measure it again.</p>")


def notes_html(notes: Sequence[str]) -> str:
    return "<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"


# ----------------------------------------------------------------------------- page
@dataclass(frozen=True)
class Section:
    """One section of a page (and its entry in the navigation bar)."""

    id: str
    nav: str
    title: str  # the heading, escaped when rendered
    body: str  # markup; a section with an empty body is left out of the page
    half: bool = False  # two consecutive half sections share one row


def _sections_html(sections: Sequence[Section]) -> str:
    out: list[str] = []
    pending: list[str] = []
    for s in sections:
        markup = f"<section id='{esc(s.id)}'><h2>{esc(s.title)}</h2>{s.body}</section>"
        if s.half:
            pending.append(markup)
            if len(pending) == 2:
                out.append("<div class='grid2'>" + "".join(pending) + "</div>")
                pending = []
            continue
        out.extend(pending)  # an unpaired half section takes the whole row
        pending = []
        out.append(markup)
    return "".join(out + pending)


def render_page(*, kind: str, title: str, title_id: str, sub: str, sections: Sequence[Section], banner: str = "",
                version: str = "", generated: datetime | None = None) -> str:
    """The whole page: header, navigation, ``banner`` (trusted markup), sections, footer, script."""
    generated = generated or datetime.now(timezone.utc)
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
    shown = [s for s in sections if s.body]
    nav = "".join(f"<a href='#{esc(s.id)}'>{esc(s.nav)}</a>" for s in shown)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)} — nasbench {esc(kind)} report</title><style>{STYLE}</style></head><body><main>"
        f"<header><div class='kicker'>nasbench {esc(kind)} report</div><h1 id='{esc(title_id)}'>{esc(title)}</h1>"
        f"<p class='sub'>{esc(sub)}</p></header><nav>{nav}</nav>{banner}{_sections_html(shown)}"
        f"<p class='muted'>Generated {esc(generated.strftime('%Y-%m-%d %H:%M UTC'))} by nasbench {esc(version)}.</p>"
        f"</main><script>{SCRIPT}</script></body></html>"
    )


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Replace every file atomically; HTML pages last, so a page is never newer than the CSVs it points to."""
    order = sorted(files, key=lambda p: p.suffix == ".html")  # stable: CSVs in the order given, then pages
    return write_together({Path(p): files[p] for p in order})
