"""Rich terminal table from result rows (units in every header)."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from nasbench.report.schema import TERMINAL_COLUMNS


def format_cell(value: object, scale: float, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if scale != 1:
        return fmt.format(float(value) * scale)  # type: ignore[arg-type]
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def rows_table(frame: pd.DataFrame, title: str = "", columns=TERMINAL_COLUMNS) -> Table:
    present = [c for c in columns if c[0] in frame.columns and not frame[c[0]].isna().all()]
    table = Table(title=title, header_style="bold", show_lines=False)
    for col, header, _, _ in present:
        table.add_column(header, justify="left" if col in ("name", "family") else "right")
    for _, row in frame.iterrows():
        table.add_row(*[format_cell(row[c], scale, fmt) for c, _, scale, fmt in present])
    return table
