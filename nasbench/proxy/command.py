"""``nasbench train MODEL``: one proxy training run, its curve as CSV + SVG, a summary.

Thin on purpose: parse options, load the data, build the model, call ``train_proxy``,
render. Output files (``curve.csv``, ``curve.svg``, ``result.json``) are written only
after training succeeded, each to a temporary file then renamed into place, so a failed
or interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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
from nasbench.report.files import atomic_write_text, shown_path

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
    out_dir = out if out is not None else default_out_dir()
    check_out_dir(out_dir)  # before training, not after it
    spec = resolve(model)
    err = stderr_console()
    with err.status("decoding data ..."):
        data = load_data(data_src, imgsz=imgsz, seed=seed, val_split=val_split)
    plan_steps(steps, epochs, data.info.n_train, batch)  # a bad --batch fails here, before any output
    err.print(f"data: {data.info.describe()}", highlight=False, soft_wrap=True)
    if data.info.skipped:
        skipped = f"skipped {len(data.info.skipped)} unreadable image(s), e.g. {data.info.skipped[0]}"
        err.print(styled((skipped, "yellow")))
    torch.manual_seed(seed)  # fixed initial weights: the same command gives the same curve
    net = spec.build(num_classes=data.num_classes)

    progress = Progress(
        TextColumn("train {task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    with progress:
        task = progress.add_task(spec.name, total=None, status="")

        def on_step(step: int, total: int, point: CurvePoint | None) -> None:
            status = f"val top-1 {point.val_top1:.1f}%" if point is not None else None
            progress.update(task, completed=step, total=total, **({"status": status} if status else {}))

        recipe = Recipe(steps=steps, epochs=epochs, batch=batch, lr=lr, amp=amp, mixup=mixup, cutmix=cutmix, ema=ema,
                        label_smoothing=label_smoothing, augment=augment)
        result = train_proxy(net, data, recipe, EvalPlan(evals=evals, probe_val=probe_val), imgsz=imgsz, device=device,
                             seed=seed, progress=on_step)

    written = write_outputs(out_dir, result, spec.name)
    console = stdout_console()
    console.print(summary_table(result, spec.name))
    for path in written:
        console.print(f"wrote {shown_path(path)}", highlight=False, soft_wrap=True)  # paths stay copy-pasteable


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


def default_out_dir(root: Path = Path("reports")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = root / f"train-{stamp}", 2
    while candidate.exists():  # two runs in the same second
        candidate, n = root / f"train-{stamp}-{n}", n + 1
    return candidate


def check_out_dir(path: Path) -> None:
    """The folder, or its nearest existing parent, must be a writable directory. Nothing is
    created here, so a run that fails later leaves no empty folder behind."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    problem = "is not a directory" if not probe.is_dir() else None if os.access(probe, os.W_OK | os.X_OK) \
        else "is not writable"
    if problem:
        raise UserError(f"cannot write output folder '{path}': '{probe}' {problem}")


def write_outputs(out_dir: Path, result: ProxyResult, model_name: str) -> list[Path]:
    files = {
        out_dir / "curve.csv": curve_csv(result),
        out_dir / "curve.svg": curve_svg(result, model_name),
        out_dir / "result.json": result_json(result, model_name),
    }
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)


def curve_csv(result: ProxyResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in result.curve:
        writer.writerow([
            p.step, f"{p.train_loss:.6g}", f"{p.val_loss:.6g}", f"{p.val_top1:.4g}", p.val_images, f"{p.lr:.6g}",
            f"{p.elapsed_s:.3f}", result.data.kind, str(result.data.synthetic).lower(),
        ])
    return buf.getvalue()


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


# ---------------------------------------------------------------- SVG plot (no matplotlib)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _panel(
    x0: float, y0: float, width: float, height: float,
    xs: list[float], series: list[tuple[str, list[float], str]], y_label: str, x_ticks: list[float],
) -> list[str]:
    """One chart: axes, grid, ticks, a polyline with markers per series, a legend."""
    finite = [v for _, ys, _ in series for v in ys if math.isfinite(v)]
    y_ticks = nice_ticks(min(finite, default=0.0), max(finite, default=1.0))
    x_lo, x_hi = x_ticks[0], x_ticks[-1]
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return x0 + (x - x_lo) / (x_hi - x_lo) * width

    def py(y: float) -> float:
        return y0 + height - (y - y_lo) / (y_hi - y_lo) * height

    parts = [f'<rect x="{x0}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="#444"/>']
    for t in y_ticks:
        parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{x0 - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in x_ticks:
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" '
                     f'y1="{y0 + height}" y2="{y0 + height + 4}" stroke="#444"/>')
        parts.append(f'<text x="{px(t):.1f}" y="{y0 + height + 17}" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(
        f'<text x="{x0 - 48}" y="{y0 + height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 48} {y0 + height / 2})">{escape(y_label)}</text>'
    )
    for i, (name, ys, colour) in enumerate(series):
        points = [(px(x), py(y)) for x, y in zip(xs, ys) if math.isfinite(y)]
        if points:
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in points)
        ly = y0 + 14 + 16 * i
        parts.append(f'<line x1="{x0 + width - 120}" x2="{x0 + width - 100}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{x0 + width - 94}" y="{ly}">{escape(name)}</text>')
    return parts


def curve_svg(result: ProxyResult, model_name: str) -> str:
    """A self-contained SVG: loss (train, val) and val top-1 (%) against the step."""
    width, height = 760, 580
    left, plot_w, plot_h = 80, 640, 180
    steps = [float(p.step) for p in result.curve]
    x_ticks = nice_ticks(0.0, max(steps, default=1.0))
    title = f"{model_name}: proxy training on {result.data.label}"
    subtitle = (
        f"top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  after {result.steps_done} steps x batch "
        f"{result.batch} at {result.imgsz} px  |  {result.device}, amp {result.amp}, seed {result.seed}"
    )
    body = [
        f'<text x="{left}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="{left}" y="44" fill="#555">{escape(subtitle)}</text>',
    ]
    body += _panel(
        left, 84, plot_w, plot_h, steps,
        [("train loss", [p.train_loss for p in result.curve], "#1f77b4"),
         ("val loss", [p.val_loss for p in result.curve], "#d62728")],
        "loss (cross-entropy)", x_ticks,
    )
    body += _panel(
        left, 84 + plot_h + 60, plot_w, plot_h, steps,
        [("val top-1", [p.val_top1 for p in result.curve], "#2ca02c")],
        "val top-1 (%)", x_ticks,
    )
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">step</text>')
    if result.data.synthetic:
        body.append(f'<text x="{left}" y="62" fill="#b00" font-weight="bold">SYNTHETIC DATA: the built-in '
                    "generated task, not real images</text>")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
        f'<rect width="{width}" height="{height}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
