"""Self-contained HTML for result rows: no scripts from the network, every string escaped."""

from __future__ import annotations

import html

import pandas as pd

from nasbench.report.schema import COLUMNS, TERMINAL_COLUMNS
from nasbench.report.table import format_cell

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #ddd}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.notes{max-width:60rem;color:#444;font-size:14px}code{background:#f4f4f4;padding:0 3px}
"""

METHOD_NOTES = [
    "MACs: multiply-accumulates per image counted by torch's FlopCounterMode on the meta device "
    "(conv, linear, matmul/bmm/einsum, scaled-dot-product attention, grid_sample). "
    "FLOPs = 2 × MACs. Normalisation, activations and softmax are not counted.",
    "fvcore and thop columns are the counts those tools give for the same model and input; "
    "they are cross-checks, not used for decisions (fvcore skips scaled_dot_product_attention, "
    "thop sees only module hooks).",
    "Params and MACs are of the deploy form (BN folded, re-parameterised branches merged) where a family has one.",
]


def rows_html(frame: pd.DataFrame, title: str, context: dict[str, str], timing_what: str = "") -> str:
    esc = html.escape
    present = [c for c in TERMINAL_COLUMNS if c[0] in frame.columns]
    head = "".join(f"<th title='{esc(COLUMNS.get(c, ''))}'>{esc(h)}</th>" for c, h, _, _ in present)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for col, _, scale, fmt in present:
            cls = "" if col in ("name", "family") else " class='num'"
            cells.append(f"<td{cls}>{esc(format_cell(row[col], scale, fmt))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ctx = "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in context.items())
    notes = "".join(f"<li>{esc(n)}</li>" for n in METHOD_NOTES + ([f"Latency: {timing_what}."] if timing_what else []))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1><ul>{ctx}</ul>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<h2>Methodology</h2><ul class='notes'>{notes}</ul>"
        "<p class='notes'>Full-precision numbers are in the CSV next to this file.</p>"
        "</body></html>"
    )
