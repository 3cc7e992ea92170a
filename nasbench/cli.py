"""`nasbench` command line: parse, call the library, render. No measuring logic here.

Bad input raises ``UserError`` anywhere below; it is printed as one line and the
command exits with code 2 (click's own usage errors also exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nasbench import __version__
from nasbench.console import error_line, stderr_console, stdout_console, styled
from nasbench.errors import UserError
from nasbench.options import BACKEND_HELP, BACKENDS, FiniteFloat

console = stdout_console()
err_console = stderr_console()



class NasbenchGroup(click.Group):
    """Turns UserError and click's usage errors of a command into one line + exit 2, and Ctrl-C
    into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            err_console.print(error_line(str(exc)), highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # click prints usage + hint + message on three lines
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            err_console.print(error_line(f"{exc.format_message()} (see `{where} -h`)"),
                              highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)


@click.group(cls=NasbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nasbench")
def main() -> None:
    """Honest measurement, comparison and latency-budgeted search of lightweight
    vision backbones (`nasbench models` lists every family the zoo holds).

    Units everywhere: params (count), MACs (multiply-accumulates), FLOPs = 2 x MACs,
    latency in milliseconds.
    """


# ----------------------------------------------------------------------------- models
@main.command("models")
@click.option("--family", "family_filter", default=None, help="Only this family.")
@click.option("--no-cost", is_flag=True, help="Skip the params/MACs columns (instant).")
def models_cmd(family_filter: str | None, no_cost: bool) -> None:
    """List every preset with its family, params and MACs at its native input size.

    Params are given for the training form (what most papers quote) and the deploy
    form (BN folded, re-parameterised branches merged: what gets timed). MACs are of
    the deploy form, from the same counter as `compare`, run on the meta device (no
    weights are allocated). "published top-1" is the paper's ImageNet-1k top-1 at its
    eval resolution (sources listed under the table): the ground truth nasbench's
    accuracy estimators are judged by.
    """
    from rich.table import Table

    from nasbench import zoo
    from nasbench.families.base import fuse_for_deploy
    from nasbench.metrics.cost import count_cost, count_params

    families = zoo.all_families()
    if family_filter is not None and family_filter not in families:
        hint = zoo.closest_names(family_filter, list(families))
        raise UserError(f"unknown family '{family_filter}'" + (f"; did you mean {', '.join(hint)}?" if hint
                        else f" (known: {', '.join(sorted(families))})"))
    table = Table(title="nasbench presets", header_style="bold")
    cost_headers = ("params M (train form)", "params M (deploy)", "MACs G", "FLOPs G (2×MACs)")
    headers = ("preset", "family", "native imgsz px", "published top-1 % (@px)") + (() if no_cost else cost_headers)
    for header in headers:
        table.add_column(header, justify="left" if header in ("preset", "family") else "right")
    sources: dict[str, list[str]] = {}
    for name, (fam, cfg) in zoo.all_presets().items():
        if family_filter and fam.name != family_filter:
            continue
        record = fam.published.get(name)
        if record is not None:
            sources.setdefault(record.source, []).append(name)
        published = "—" if record is None else f"{record.top1:.2f} (@{record.imgsz})"
        cells = [name, fam.name, str(fam.native_imgsz), published]
        if not no_cost:
            model = zoo.build_for_counting(fam, cfg)
            train_params, _ = count_params(model)
            cost = count_cost(fuse_for_deploy(model), fam.native_imgsz)
            cells += [f"{train_params / 1e6:.3f}", f"{cost.params / 1e6:.3f}", f"{cost.macs / 1e9:.3f}",
                      f"{cost.flops / 1e9:.3f}"]
        table.add_row(*cells)
    console.print(table)
    for source, names in sources.items():
        console.print(f"published top-1 of {', '.join(names)}: {source}", highlight=False)
    if family_filter is not None:  # the family's own description and conventions, from its module
        fam = families[family_filter]
        for text in (fam.description, fam.notes):
            if text:
                console.print(text, highlight=False, soft_wrap=True)


@main.command("estimators")
def estimators_cmd() -> None:
    """List the accuracy estimators with their figures against the published presets.

    Fitted estimators are scored leave-one-family-out (each family predicted by a fit on
    the others); the rest as rankings. The held-out columns: each fitted on every preset, on 30
    classic ImageNet models outside the zoo. Full table and timings:
    benchmarks/results/accuracy_validity_cpu.md.
    """
    from rich.table import Table

    from nasbench.estimate import DEFAULT_ESTIMATOR, ESTIMATORS, estimator_validity, heldout_validity

    def cell(value: float | None, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    table = Table(title="nasbench accuracy estimators", header_style="bold")
    for header in ("estimator", "kind", "what", "Kendall tau", "min tau in a family", "matched-cost pairs",
                   "MAE points (LOFO)", "held-out tau (classic)", "held-out MAE"):
        table.add_column(header, justify="left" if header in ("estimator", "kind", "what") else "right")
    for name, estimator in ESTIMATORS.items():
        v = estimator_validity(estimator)
        held = heldout_validity(name) or {}
        table.add_row(name + (" (default)" if name == DEFAULT_ESTIMATOR else ""), estimator.kind,
                      estimator.description, f"{v.tau:.3f}", f"{v.min_family_tau:.2f}",
                      f"{v.pairs_right}/{v.pairs_total}", cell(v.mae, "{:.2f}"), cell(held.get("tau"), "{:.3f}"),
                      cell(held.get("mae"), "{:.2f}"))
    console.print(table)


# ----------------------------------------------------------------------------- compare
def _timing_options(f):
    options = [
        click.option("--device", default="auto", show_default=True,
                     help="auto (cuda if available), cpu, cuda, cuda:N."),
        click.option("--imgsz", type=click.IntRange(min=1), default=None,
                     help="Input height=width in px [default: each family's native size]."),
        click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Batch size for timing."),
        click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True),
        click.option("--channels-last", is_flag=True, help="Time with channels_last memory format."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads torch uses while timing [default: torch's default]; recorded in the output."),
        click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs per model."),
        click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
                     help="Warm-up runs per model."),
        click.option("--time-limit", type=FiniteFloat(min=0.1), default=60.0, show_default=True,
                     help="Seconds for all timing together; fewer runs are taken (and flagged) beyond it."),
        click.option("--no-fuse", is_flag=True, help="Measure the training form (BN and rep-branches unfolded)."),
        click.option("--backend", type=click.Choice(BACKENDS), default="eager", show_default=True,
                     help=BACKEND_HELP + " The --detector columns stay eager."),
        click.option("--cuda-graph", is_flag=True,
                     help="Also time each forward replayed from a CUDA graph (--device cuda, --backend eager): a "
                          "latency_graph_ms column beside latency_ms shows what kernel launches cost. A model that "
                          "cannot be captured gets one line and keeps its eager figures."),
        click.option("--refresh-peaks", is_flag=True,
                     help="Measure this device's peak FLOP/s and bandwidth again (the roofline bound's roofs; "
                          "otherwise measured once per device, dtype and thread count, then read from the cache)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command("compare")
@click.argument("models", nargs=-1, required=True)
@_timing_options
@click.option("--no-crosscheck", is_flag=True, help="Skip the fvcore/thop cross-check columns.")
@click.option("--by-module", is_flag=True, help="Also print MACs per module (two levels deep).")
@click.option("--detector", is_flag=True,
              help="Also measure each backbone inside RT-DETR (rtdetr-l neck + decoder, 80 classes) at --det-imgsz: "
                   "det_* columns with Δ % vs an added rtdetr_l row, timed in the same run. Off by default: "
                   "detector forwards at 640 px take seconds on a CPU (CPU timing is capped at 1 warm-up, 5 runs, "
                   "60 s).")
@click.option("--det-imgsz", type=click.IntRange(min=32), default=640, show_default=True,
              help="Input size in px for the --detector columns.")
@click.option("--estimate", "estimator", is_flag=False, flag_value="default", default=None, metavar="[ESTIMATOR]",
              help="Add an estimated ImageNet top-1 (est_top1) from the validated default estimator, or from the "
                   "named one (see `nasbench estimators`). Presets show their published top-1 beside it.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the CSV here.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: reports/compare-<timestamp>/].")
def compare_cmd(models, device, imgsz, batch, dtype, channels_last, threads, runs, warmup, time_limit,
                no_fuse, backend, cuda_graph, refresh_peaks, no_crosscheck, by_module, detector, det_imgsz, estimator,
                csv_path, out_dir) -> None:
    """Measure MODELS side by side: params, MACs (+ fvcore/thop cross-checks), latency.

    MODELS are preset names (`nasbench models`), config files (.yaml/.json with
    `family:` and knobs) or `path/to/file.py:factory` / `package.module:factory`
    returning an nn.Module. A factory file is executed: name only code you trust.
    `rtdetr_l` is the whole reference detector (HGNetv2-L + the rtdetr-l head, 80 classes,
    640 px unless --imgsz): 32,970,476 params; its backbone alone is `hgnetv2_l`.

    Detector columns (--detector) are opt-in because timing RT-DETR at 640 px is slow
    on a CPU; they use the backbone's three deepest levels (any strides that double).
    """
    from nasbench.comparison import CompareOptions, compare_models
    from nasbench.metrics.latency import TimingPlan
    from nasbench.report.compare_html import write_compare_report
    from nasbench.report.files import (
        DEFAULT_REPORTS,
        ensure_writable_dir,
        ensure_writable_file,
        shown_path,
        timestamped_dir,
    )
    from nasbench.report.schema import DETECTOR_TERMINAL_COLUMNS, TERMINAL_COLUMNS
    from nasbench.report.table import rows_table

    command = click.get_current_context().find_root().invoked_subcommand or "compare"  # or "baseline"
    out_dir = out_dir or timestamped_dir(DEFAULT_REPORTS, command)
    ensure_writable_dir(out_dir, "report directory")  # fail before measuring, not after
    if estimator is not None:
        from nasbench.estimate import get_estimator

        get_estimator(estimator)  # an unknown name fails before any work
    if csv_path is not None:
        ensure_writable_file(csv_path, "CSV file")
    opts = CompareOptions(
        imgsz=imgsz, batch=batch, device=device, dtype=dtype, channels_last=channels_last, threads=threads,
        fuse=not no_fuse, crosscheck=not no_crosscheck,
        plan=TimingPlan(warmup=warmup, runs=runs, rounds=min(5, runs), time_limit_s=time_limit),
        detector=detector, det_imgsz=det_imgsz, estimator=estimator, backend=backend, refresh_peaks=refresh_peaks,
        cuda_graph=cuda_graph,
    )
    with err_console.status("measuring") as status:
        result = compare_models(list(models), opts, log=lambda s: status.update(s))
    frame = result.frame
    console.print(rows_table(frame, title=f"nasbench {command}", columns=TERMINAL_COLUMNS))
    if "det_params" in frame.columns:
        console.print(rows_table(frame, title=f"RT-DETR on each backbone at {det_imgsz} px, Δ vs rtdetr_l",
                                 columns=DETECTOR_TERMINAL_COLUMNS))
    _print_context(result)
    if by_module:
        _print_by_module(list(models), opts)
    written = write_compare_report(result, out_dir, csv_path=csv_path, command=command)
    console.print("wrote " + ", ".join(shown_path(p) for p in written), highlight=False, soft_wrap=True)


def _print_context(result) -> None:
    frame, run = result.frame, result.run
    first = frame.iloc[0]
    limited = bool(frame["time_limited"].any())
    console.print(
        f"device: {first['device_name']} ({first['device']}), {first['dtype']}, batch {first['batch']}, "
        f"threads {first['threads']}, torch {first['torch_version']}"
        + (f", CUDA {first['cuda_version']}" if first["cuda_version"] else "")
        + f"\ntimed: {run.timing_what}", highlight=False)
    if limited:
        console.print(styled(("time limit reached: fewer runs than asked (see latency_runs)", "yellow")))
    console.print(f"backend: {first['backend']}; host memory: {first['allocator']}", highlight=False)
    if run.peaks_what:
        console.print(run.peaks_what, highlight=False, soft_wrap=True)
    for _, row in frame.iterrows():
        if isinstance(row.get("graph_error"), str):
            console.print(styled((f"{row['name']}: no CUDA-graph figure: {row['graph_error']}", "yellow")),
                          highlight=False)
        if isinstance(row.get("backend_error"), str):
            console.print(styled((f"{row['name']}: not timed: {row['backend_error']}", "yellow")), highlight=False)
    unstable = frame[frame["timing_unstable"].astype(bool)] if "timing_unstable" in frame.columns else frame.iloc[:0]
    if len(unstable):
        notes = "; ".join(f"{r['name']} ({r['timing_note']})" for _, r in unstable.iterrows())
        console.print(styled((f"unstable timing, do not trust these latencies: {notes}", "yellow")), highlight=False)
    if "estimator" in frame.columns:
        from nasbench.estimate import validity_line

        console.print(f"estimate: {validity_line(frame['estimator'].iloc[0])}", highlight=False)
    if run.det_timing_what:
        console.print(f"detector: {run.det_timing_what}; Δ % = 100 × (value / rtdetr_l's − 1)",
                      highlight=False)
        if bool(frame["det_time_limited"].any()):
            console.print(styled(("detector time limit reached: fewer runs (see det_latency_runs)", "yellow")))


def _print_by_module(names: list[str], opts) -> None:
    from rich.table import Table

    from nasbench.comparison import measure_cost, prepare, resolve_model, unique_labels

    for name, label in zip(names, unique_labels(names)):
        cand = prepare(resolve_model(name), label, opts)
        cost = measure_cost(cand)
        table = Table(title=f"MACs by module: {label} @ {cand.imgsz}px", header_style="bold")
        table.add_column("module")
        table.add_column("MACs M", justify="right")
        table.add_column("share %", justify="right")
        for path, macs in cost.by_module.items():
            depth = path.count(".")
            if 1 <= depth <= 2 and macs:
                table.add_row("  " * (depth - 1) + path.split(".", 1)[1], f"{macs / 1e6:.2f}",
                              f"{100 * macs / max(cost.macs, 1):.1f}")
        console.print(table)


@main.command("baseline")
@_timing_options
@click.option("--det-imgsz", type=click.IntRange(min=32), default=640, show_default=True,
              help="Input size in px for the detector columns.")
@click.option("--no-crosscheck", is_flag=True, help="Skip the fvcore/thop cross-check columns.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the CSV here.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report directory [default: reports/baseline-<timestamp>/].")
@click.pass_context
def baseline_cmd(ctx: click.Context, **options) -> None:
    """Measure the reference detector rtdetr-l alone (HGNetv2-L + rtdetr-l head, 80 classes).

    Prints the one `nasbench compare rtdetr_l --detector` row (the detector at its 640 px
    in the model columns, at --det-imgsz in the det_* columns) and writes the same report files.
    On a CPU the detector timing is capped at 1 warm-up, 5 runs, 60 s.
    """
    ctx.invoke(compare_cmd, models=("rtdetr_l",), detector=True, by_module=False, estimator=None, **options)


def _register_commands() -> None:
    """Commands that live next to their library code."""
    from nasbench.nas.command import export, search
    from nasbench.proxy.command import train
    from nasbench.report.command import report

    for command in (search, export, train, report):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
