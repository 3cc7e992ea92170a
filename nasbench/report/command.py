"""`nasbench report STUDY`: the HTML/CSV report of a search study, and its Pareto set in the terminal.

Registered by ``nasbench.cli`` (``main.add_command(report)``). Errors are ``UserError``s
(one line, exit 2 through the CLI group); storage passwords are never printed.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from nasbench.console import stdout_console
from nasbench.report.files import DEFAULT_REPORTS, ensure_writable_dir, shown_path
from nasbench.report.study import (
    DISPLAY_COLUMNS,
    QUEUED_LABEL,
    StudyData,
    latency_model_line,
    load_study_data,
    objective_name,
    report_dirname,
)
from nasbench.report.study_html import write_report_files
from nasbench.storage import DEFAULT_STORAGE, mask_url, open_study

PARETO_TERMINAL_COLUMNS = [c for c in DISPLAY_COLUMNS if c[0] not in ("state", "feasible", "duplicate_of", "reason")]
REFERENCE_TERMINAL_COLUMNS = [c for c in DISPLAY_COLUMNS if c[0] not in ("trial", "state", "duplicate_of", "reason",
                                                                          "duration_s")]




def summary_lines(data: StudyData) -> list[str]:
    a, c = data.attrs, data.counts
    budget = a.get("budget_ms")
    lines = [
        f"study {data.name}: {c['run']} trials — {c['feasible']} feasible, {c['infeasible']} over budget/caps, "
        + (f"{c['predicted_over']} predicted over budget, " if c["predicted_over"] else "")
        + f"{c['pruned']} pruned, {c['failed']} failed"
        + (f", {c['surplus']} surplus (never ran)" if c["surplus"] else "")
        + (f", {c['running']} still running" if c["running"] else "")
        + (f", {c['queued']} {QUEUED_LABEL}" if c["queued"] else ""),
        f"objective {objective_name(a)}"
        + (f" ({a.get('objective_label')}, estimator {a.get('estimator')})" if objective_name(a) == "estimate" else "")
        + (f", latency budget {budget:g} ms" if isinstance(budget, (int, float)) else "")
        + f", on {a.get('device_name', '?')} ({a.get('device', '?')}, {a.get('dtype', '?')}, "
        f"{a.get('threads', '?')} threads)",
    ]
    proxy = a.get("proxy")
    validity = (a.get("objective_validity") or {}).get("line")
    if validity:
        lines.append(f"objective validity: {validity}")
    model_line = latency_model_line(data.trials)
    if model_line:
        lines.append(model_line)
    if proxy and proxy.get("synthetic"):
        lines.append("proxy data was SYNTHETIC: proxy top-1 ranks candidates, it is not an accuracy estimate")
    elif not proxy and objective_name(a) == "macs":
        lines.append("cost-only search: no candidate was trained (objective = MACs under the budget)")
    return lines


@click.command("report")
@click.argument("study_name", metavar="STUDY")
@click.option("--storage", default=DEFAULT_STORAGE, show_default=True,
              help="Optuna storage URL: sqlite:///path.db, postgresql://user:pass@host/db, or journal:PATH.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: reports/<study name>/].")
def report(study_name: str, storage: str, out_dir: Path | None) -> None:
    """Write the report of search STUDY: index.html (self-contained, works offline), trials.csv, pareto.csv.

    The page shows the Pareto front (latency in ms vs the objective: estimated top-1 in
    %, proxy top-1 in %, or MACs for cost-only searches) with the named presets and rtdetr-l, MACs vs latency by
    family, the optimisation history, knob importances, every trial, and each Pareto
    point's config as YAML that `nasbench compare` accepts. FLOPs = 2 x MACs.
    """
    from nasbench.nas.workers import quiet_optuna

    quiet_optuna()
    study = open_study(study_name, storage)  # a wrong name fails here, before any directory is made
    out_dir = out_dir or DEFAULT_REPORTS / report_dirname(study_name)
    ensure_writable_dir(out_dir, "report directory")  # and an unwritable one before the work
    render_study(study, out_dir, mask_url(storage), stdout_console())


def render_study(study, out_dir: Path, storage_label: str, console: Console) -> list[Path]:
    """Print the Pareto set and summary of ``study``; write its report files."""

    from nasbench.report.table import rows_table

    data = load_study_data(study)
    if len(data.pareto):
        console.print(rows_table(data.pareto, title=f"Pareto set of {data.name} (fastest first)",
                                 columns=PARETO_TERMINAL_COLUMNS))
    else:
        console.print("no feasible completed trial yet: the Pareto set is empty")
    references = [f for f in (data.presets, data.baseline) if len(f)]
    if references:
        import pandas as pd

        console.print(rows_table(pd.concat(references, ignore_index=True),
                                 title="named presets and rtdetr-l baseline, measured the same way",
                                 columns=REFERENCE_TERMINAL_COLUMNS))
    for line in summary_lines(data):
        console.print(line, highlight=False)
    written = write_report_files(data, out_dir, storage_label=storage_label)
    console.print("wrote " + ", ".join(shown_path(p) for p in written), highlight=False, soft_wrap=True)
    return written
