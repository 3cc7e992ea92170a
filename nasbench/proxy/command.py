"""``nasbench train MODEL``: one proxy training run, its curve as CSV + SVG, a summary.

Thin on purpose: parse options, load the data, build the model, call ``train_proxy``,
render. Output files (``curve.csv``, ``curve.svg``, ``result.json``) are written only
after training succeeded, all three together by ``report.files`` (temporaries renamed
into place once all are on disk), so a failed or interrupted run leaves nothing
half-written and never a mix of old and new files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nasbench.console import stderr_console, stdout_console, styled
from nasbench.errors import UserError
from nasbench.options import FiniteFloat
from nasbench.proxy.augment import AUGMENTS
from nasbench.proxy.data import load_data
from nasbench.proxy.train import AMP_CHOICES, CurvePoint, EvalPlan, ProxyResult, Recipe, plan_steps, train_proxy
from nasbench.report.files import (
    DEFAULT_REPORTS,
    check_writable_dir,
    csv_text,
    shown_path,
    timestamped_dir,
    write_together,
)
from nasbench.report.svg import PALETTE, Panel, Series, panels_svg

DEFAULT_STEPS = 300
CSV_COLUMNS = ("step", "train_loss", "val_loss", "val_top1_pct", "val_images", "lr", "elapsed_s", "data_kind",
               "synthetic")


@click.command("train")
@click.argument("model")
@click.option("--data", "data_src", metavar="SRC", default=None,
              help="ImageFolder dir (train/<class>/ + val/<class>/, or one <class>/ tree), a CIFAR-10/100 "
                   "python-pickle dir, or omitted / 'synthetic' for the built-in generated task.")
@click.option("--val-split", type=FiniteFloat(0.0, 1.0, min_open=True, max_open=True), default=0.1, show_default=True,
              help="Fraction of each class held out for val when --data is a single <class>/ tree.")
@click.option("--imgsz", type=int, default=None,
              help="Training side in px [default: 32 for synthetic and CIFAR; for folders the first image's "
                   "shorter side, at most 128].")
@click.option("--steps", type=int, default=None, help=f"Optimizer steps [default: {DEFAULT_STEPS}].")
@click.option("--epochs", type=FiniteFloat(min=0.0, min_open=True), default=None,
              help="Length in passes over the training set (instead of --steps).")
@click.option("--batch", type=int, default=128, show_default=True, help="Images per step.")
@click.option("--lr", type=FiniteFloat(min=0.0, min_open=True), default=2e-3, show_default=True,
              help="Peak AdamW learning rate (linear warm-up over 5% of the steps, then cosine).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds model init, batch order, augmentation and the synthetic data.")
@click.option("--amp", type=click.Choice(AMP_CHOICES), default="auto", is_flag=False, flag_value="on",
              show_default=True, help="Autocast: auto = bf16/fp16 on CUDA, off elsewhere; --amp alone = on.")
@click.option("--mixup", type=FiniteFloat(min=0.0), default=0.0, is_flag=False, flag_value=0.8, show_default=True,
              help="Mixup Beta alpha (0 = off; --mixup alone = 0.8).")
@click.option("--cutmix", type=FiniteFloat(min=0.0), default=0.0, is_flag=False, flag_value=1.0, show_default=True,
              help="CutMix Beta alpha (0 = off; --cutmix alone = 1.0).")
@click.option("--ema", type=FiniteFloat(0.0, 1.0, max_open=True), default=None, is_flag=False, flag_value=0.999,
              help="Evaluate an EMA of the weights with this decay (--ema alone = 0.999).")
@click.option("--label-smoothing", type=FiniteFloat(0.0, 1.0, max_open=True), default=0.1, show_default=True)
@click.option("--augment", type=click.Choice(AUGMENTS), default="auto", show_default=True,
              help="Crop policy: auto = pad-crop up to 64 px, random-resized-crop above.")
@click.option("--evals", type=int, default=10, show_default=True, help="Evaluations on the val set (curve points).")
@click.option("--probe-val", type=click.IntRange(min=1), default=None,
              help="Score all but the last evaluation on this many val images, classes in turn "
                   "[default: the whole val set every time].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: reports/train-<timestamp>/].")
def train(
    model: str,
    data_src: str | None,
    val_split: float,
    imgsz: int | None,
    steps: int | None,
    epochs: float | None,
    batch: int,
    lr: float,
    device: str,
    seed: int,
    amp: str,
    mixup: float,
    cutmix: float,
    ema: float | None,
    label_smoothing: float,
    augment: str,
    evals: int,
    probe_val: int | None,
    out: Path | None,
) -> None:
    """Train MODEL briefly (a proxy run) and report top-1, curve and throughput.

    MODEL is a preset name, a config .yaml/.json or file.py:factory (as for other
    commands). A factory file is executed: name only code you trust. Writes curve.csv,
    curve.svg and result.json to --out.
    """
    from nasbench.zoo import resolve  # the zoo imports every family: only when used

    if steps is None and epochs is None:
        steps = DEFAULT_STEPS
    if steps is not None and steps < 1:  # before spending time on the data
        raise UserError(f"--steps must be at least 1, got {steps}")
    out_dir = out if out is not None else timestamped_dir(DEFAULT_REPORTS, "train")
    check_writable_dir(out_dir)  # before training, not after it; creates nothing
    spec = resolve(model)
    err = stderr_console()
    with err.status("decoding data ..."):
        data = load_data(data_src, imgsz=imgsz, seed=seed, val_split=val_split)
    plan_steps(steps, epochs, data.info.n_train, batch)  # a bad --batch fails here, before any output
    _describe(data, err)
    torch.manual_seed(seed)  # fixed initial weights: the same command gives the same curve
    net = spec.build(num_classes=data.num_classes)
    recipe = Recipe(steps=steps, epochs=epochs, batch=batch, lr=lr, amp=amp, mixup=mixup, cutmix=cutmix, ema=ema,
                    label_smoothing=label_smoothing, augment=augment)
    with _progress(err) as progress:
        task = progress.add_task(spec.name, total=None, status="")

        def on_step(step: int, total: int, point: CurvePoint | None) -> None:
            status = f"val top-1 {point.val_top1:.1f}%" if point is not None else None
            progress.update(task, completed=step, total=total, **({"status": status} if status else {}))

        result = train_proxy(net, data, recipe, EvalPlan(evals=evals, probe_val=probe_val), imgsz=imgsz, device=device,
                             seed=seed, progress=on_step)
    written = write_outputs(out_dir, result, spec.name)
    console = stdout_console()
    console.print(summary_table(result, spec.name))
    for path in written:
        console.print(f"wrote {shown_path(path)}", highlight=False, soft_wrap=True)  # paths stay copy-pasteable


def _describe(data, err) -> None:
    """The training data on stderr, with the images that could not be read."""
    err.print(f"data: {data.info.describe()}", highlight=False, soft_wrap=True)
    if data.info.skipped:
        skipped = f"skipped {len(data.info.skipped)} unreadable image(s), e.g. {data.info.skipped[0]}"
        err.print(styled((skipped, "yellow")))


def _progress(err) -> Progress:
    return Progress(TextColumn("train {task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=err)


# ---------------------------------------------------------------- rendering


def summary_table(result: ProxyResult, model_name: str) -> Table:
    title = f"{model_name} on {result.data.label}"
    table = Table(title=title, title_justify="left")
    for header in ("top-1 (%)", "top-5 (%)", "val loss", "steps", "params (M)", "img/s", "train (s)", "wall (s)",
                   "peak mem (MiB)"):
        table.add_column(header, justify="right")
    steps = f"{result.steps_done}/{result.steps}" if result.steps_done != result.steps else str(result.steps)
    table.add_row(
        f"{result.top1:.2f}",
        f"{result.top5:.2f}",
        f"{result.val_loss:.4f}",
        steps,
        f"{result.params / 1e6:.3f}",
        f"{result.images_per_s:,.0f}",
        f"{result.train_s:.1f}",
        f"{result.wall_s:.1f}",
        f"{result.peak_mem_bytes / 2**20:,.0f}",
    )
    info = result.data
    mean = ", ".join(f"{m:.3f}" for m in info.mean)
    std = ", ".join(f"{s:.3f}" for s in info.std)
    ema = f"EMA {result.ema:g}" if result.ema else "no EMA"
    notes = [
        f"data: {info.n_train} train / {info.n_val} val at {result.imgsz} px; mean ({mean}), std ({std}) (0..1 units)",
        f"device: {result.device}, amp {result.amp}, batch {result.batch}, lr {result.lr:g}, seed {result.seed}, "
        f"{result.augment}, mixup {result.mixup:g}, cutmix {result.cutmix:g}, label smoothing "
        f"{result.label_smoothing:g}, {ema}",
        f"images/s: training steps only (decode and evaluations excluded); peak mem: {result.peak_mem_kind}",
    ]
    if result.model_gflops_per_s is not None:
        notes.append(f"model FLOPs: {result.model_gflops_per_s:,.1f} GFLOP/s of training = img/s x "
                     f"{result.train_flops_per_image / 1e6:,.1f} MFLOP per image (3 x forward at {result.imgsz} px, "
                     "the MFU convention)")
    if result.stopped_early:
        notes.append("stopped early by the callback")
    if result.diverged:
        notes.append("DIVERGED: the loss became NaN/inf; try a lower --lr")
    if info.synthetic:
        notes.append("SYNTHETIC data: numbers rank candidates on the built-in task, not on real images")
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table


def write_outputs(out_dir: Path, result: ProxyResult, model_name: str) -> list[Path]:
    return write_together({
        out_dir / "curve.csv": curve_csv(result),
        out_dir / "curve.svg": curve_svg(result, model_name),
        out_dir / "result.json": result_json(result, model_name),
    })


def curve_csv(result: ProxyResult) -> str:
    """One row per evaluation, figures cut to the digits they resolve; NaN is an empty cell
    (as in the other CSVs nasbench writes)."""
    import pandas as pd  # here, not at the top: bad input fails before this ~0.6 s import

    def sig(value: float, digits: int) -> float:
        return float(f"{value:.{digits}g}")

    rows = [(p.step, sig(p.train_loss, 6), sig(p.val_loss, 6), sig(p.val_top1, 4), p.val_images, sig(p.lr, 6),
             round(p.elapsed_s, 3), result.data.kind, str(result.data.synthetic).lower()) for p in result.curve]
    return csv_text(pd.DataFrame(rows, columns=list(CSV_COLUMNS)))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def result_json(result: ProxyResult, model_name: str) -> str:
    payload = {"model": model_name, **result.to_dict()}
    return json.dumps(_finite_or_none(payload), indent=2) + "\n"


def curve_svg(result: ProxyResult, model_name: str) -> str:
    """Loss (train, val) and val top-1 (%) against the step: two panels, one step axis."""
    steps = [p.step for p in result.curve]

    def line(name: str, values: list[float], color: str) -> Series:
        tips = [f"step {s}: {name} {v:.4g}" for s, v in zip(steps, values)]
        return Series(name, steps, values, color=color, line="line", tips=tips)

    loss = Panel([line("train loss", [p.train_loss for p in result.curve], PALETTE[0]),
                  line("val loss", [p.val_loss for p in result.curve], PALETTE[5])], "loss (cross-entropy)", "loss")
    top1 = Panel([line("val top-1", [p.val_top1 for p in result.curve], PALETTE[2])], "val top-1 (%)", "top1")
    stats = (f"top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  after {result.steps_done} steps x batch "
             f"{result.batch} at {result.imgsz} px  |  {result.device}, amp {result.amp}, seed {result.seed}")
    warning = "SYNTHETIC DATA: the built-in generated task, not real images" if result.data.synthetic else ""
    title = f"{model_name}: proxy training"  # the data label on a line of its own, where a long one still fits
    return panels_svg([loss, top1], x_label="step", title=title, notes=[f"data: {result.data.label}", stats],
                      warning=warning, x_range=(0.0, float(max(steps, default=1))))
