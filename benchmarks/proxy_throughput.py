"""Training throughput of nasbench's proxy trainer vs a plain DataLoader pipeline.

Both sides train the same model, on the same data (default: cifar10-small, 32 px JPEGs),
on the same device, in the same process, with the same optimiser, schedule, loss,
clipping, autocast setting and (unless marked "plain NCHW") the channels-last memory
format that train_proxy uses; only the input pipeline differs:

- ours: ``train_proxy`` — images decoded once into a resident uint8 tensor, batched
  on-device pad-crop + flip + normalisation;
- baseline: ``torch.utils.data.DataLoader`` over a Dataset that opens each JPEG with
  Pillow on every access and augments it per sample (reflect-pad, random crop, flip,
  to-tensor, normalise), for each ``--workers`` value, plus one "plain NCHW" run (the
  loop as usually written, default memory format) to show the whole difference.

Input pipeline alone (no model): ms per batch to produce augmented inputs, ours (index
the resident tensor + ``BatchAugmenter.train_batch``) vs each DataLoader. With the model's
own step time this bounds the training ratio: (model + loader) / (model + ours) when the
loader runs in the training process (workers=0).

``--recipe full`` turns on the rest of seed 001's recipe on both sides: Mixup (alpha 0.8)
or CutMix (alpha 1.0), one per batch, and a weight EMA (decay 0.999). The baseline then
mixes each collated batch in the loop and keeps its EMA as the seed does (a Python loop
over ``state_dict()``, three tensor ops per entry, every step; held on the training device
here, where the seed holds it on the CPU). One more baseline row swaps in nasbench's EMA so
the input pipeline's share and the EMA's share of the gain can be told apart.

Model-FLOPs utilisation: training FLOPs per image are counted as 3 x the forward FLOPs
(forward + backward, the usual MFU convention; the forward from nasbench's own counter).
Achieved TFLOP/s = that x steady images/s. MFU is stated against a dense matmul timed on
the same device and dtype in the same run (what this device's GEMM really reaches), and
against ``--peak-tflops`` (a datasheet figure) when given.

Runs are interleaved ``--repeats`` times (the median is reported) because a shared
machine's speed drifts. "steady" images/s skips the first ``--skip`` steps (warm-up,
worker start-up); "end-to-end" counts everything from the call to the last step,
including our one-off decode and the loader's worker start-up.

    python benchmarks/proxy_throughput.py                  # tiny CNN, 2 threads, CPU
    python benchmarks/proxy_throughput.py --model mobilevit_xxs --steps 40 --batch 64
    python benchmarks/proxy_throughput.py --amp bf16      # both sides autocast (AMX CPUs)
    python benchmarks/proxy_throughput.py --recipe full   # + Mixup/CutMix + EMA on both sides
    python benchmarks/proxy_throughput.py --device cuda --model mobilevit_xxs --peak-tflops 989
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nasbench.device import resolve_device
from nasbench.metrics.cost import train_flops_per_image
from nasbench.metrics.latency import device_name
from nasbench.proxy.augment import BatchAugmenter, choose_policy
from nasbench.proxy.data import IMAGE_SUFFIXES, load_data
from nasbench.proxy.train import (
    EvalPlan,
    WeightEma,
    adamw,
    batch_indices,
    lr_at,
    resolve_amp,
    train_proxy,
)
from nasbench.proxy.train import Recipe as TrainRecipe
from report_out import emit  # benchmarks/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10-small"


def tiny_cnn(num_classes: int) -> nn.Module:
    """A small proxy-sized CNN (~0.1 M params), the kind of model a proxy run trains."""
    layers: list[nn.Module] = []
    channels = 3
    for i, out in enumerate((32, 64, 128)):
        layers += [nn.Conv2d(channels, out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                   nn.BatchNorm2d(out), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def build_model(name: str, num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if name == "tiny":
        return tiny_cnn(num_classes)
    from nasbench.zoo import resolve

    return resolve(name).build(num_classes=num_classes)


class JpegFolder(Dataset):
    """The usual pipeline: decode one file with Pillow per access, augment it alone."""

    def __init__(self, root: Path, mean: tuple[float, ...], std: tuple[float, ...], pad: int) -> None:
        self.classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        self.items = [(p, label) for label, name in enumerate(self.classes)
                      for p in sorted((root / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.pad = pad

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        h, w, _ = pixels.shape
        padded = np.pad(pixels, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)), mode="reflect")
        top, left = np.random.randint(0, 2 * self.pad + 1, size=2)
        crop = padded[top : top + h, left : left + w]
        if np.random.rand() < 0.5:
            crop = crop[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255)
        return (x - self.mean) / self.std, label


@dataclass(frozen=True)
class Recipe:
    """What both sides train with beyond pad-crop + flip + label smoothing."""

    mixup: float = 0.0  # Beta alpha, 0 = off
    cutmix: float = 0.0
    ema: float | None = None  # decay

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


RECIPES = {"minimal": Recipe(), "full": Recipe(mixup=0.8, cutmix=1.0, ema=0.999)}


def seed_style_mix(x: torch.Tensor, y: torch.Tensor, num_classes: int, recipe: Recipe,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-mode Mixup/CutMix on a collated batch, as the seed's loop does it: the batch
    against its own reverse, one lambda per batch, CutMix's lambda re-derived from the box."""
    targets = F.one_hot(y, num_classes).float()
    use_mixup = recipe.mixup > 0 and (recipe.cutmix <= 0 or rng.random() < 0.5)
    alpha = recipe.mixup if use_mixup else recipe.cutmix
    lam = float(rng.beta(alpha, alpha))
    partner = x.flip(0)
    if use_mixup:
        x = x.mul(lam).add_(partner.mul(1 - lam))
    else:
        h, w = x.shape[-2:]
        half_h, half_w = round(h * math.sqrt(1 - lam) / 2), round(w * math.sqrt(1 - lam) / 2)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        top, bottom, left, right = max(0, cy - half_h), min(h, cy + half_h), max(0, cx - half_w), min(w, cx + half_w)
        x = x.clone()
        x[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (h * w)
    return x, targets * lam + targets.flip(0) * (1 - lam)


class SeedStyleEma:
    """The seed's weight EMA: every step, walk ``state_dict()`` in Python and rewrite each
    entry as decay * ema + (1 - decay) * model (three tensor ops per entry)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        for key, averaged in self.module.state_dict().items():
            averaged.copy_(averaged * self.decay + (1 - self.decay) * current[key].detach())


class NasbenchEma(WeightEma):
    """nasbench's EMA (one multi-tensor lerp per step) behind the seed-style call."""

    def update(self, model: nn.Module | None = None) -> None:  # model fixed at construction
        super().update()


EMA_STYLES = {"seed": SeedStyleEma, "nasbench": NasbenchEma}


def baseline_run(model: nn.Module, dataset: JpegFolder, *, steps: int, batch: int, lr: float, workers: int,
                 device: torch.device, seed: int, skip: int, amp: str, channels_last: bool, recipe: Recipe,
                 ema_style: str = "seed") -> tuple[float, float]:
    """Same optimiser/schedule/loss/clipping as train_proxy; returns (steady, end-to-end) img/s."""
    start = time.perf_counter()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout).train()
    amp_dtype = resolve_amp(amp, device)
    optimizer = adamw(model, lr, 0.05, device)
    ema = EMA_STYLES[ema_style](model, recipe.ema) if recipe.ema else None
    mix_rng = np.random.default_rng(seed)
    num_classes = len(dataset.classes)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    warmup_steps = round(0.05 * steps)
    step, steady_start = 0, start
    while step < steps:
        for x, y in loader:
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup_steps)
            if recipe.mixes:
                x, y = seed_style_mix(x, y, num_classes, recipe, mix_rng)
            x = x.to(device, non_blocking=True).contiguous(memory_format=layout)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            if step == skip:
                steady_start = time.perf_counter()
            if step == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    return (steps - skip) * batch / (end - steady_start), steps * batch / (end - start)


def ours_run(model: nn.Module, data_dir: Path, *, steps: int, batch: int, lr: float, device: torch.device,
             seed: int, skip: int, amp: str, recipe: Recipe) -> tuple[float, float]:
    """train_proxy; steady = steps skip+1 .. steps-1 (timed by the progress hook, which runs
    after each step but after the evaluation on the last one), end-to-end = decode + all
    training steps (train_proxy's own step timer, evaluation excluded)."""
    marks: dict[int, float] = {}

    def mark(step: int, total: int, point) -> None:
        if step in (skip, steps - 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            marks[step] = time.perf_counter()

    start = time.perf_counter()
    data = load_data(data_dir).to(device)  # counted: the one-off decode is part of our cost
    decode_s = time.perf_counter() - start
    result = train_proxy(model, data, TrainRecipe(steps=steps, batch=batch, lr=lr, amp=amp, mixup=recipe.mixup,
                                                  cutmix=recipe.cutmix, ema=recipe.ema),
                         EvalPlan(evals=1), device=device, seed=seed, progress=mark)
    steady = (steps - 1 - skip) * batch / (marks[steps - 1] - marks[skip])
    return steady, steps * batch / (decode_s + result.train_s)


def ours_pipeline_ms(data_dir: Path, *, batch: int, device: torch.device, seed: int, batches: int) -> float:
    """ms per batch for train_proxy's input side alone: index the resident images, augment."""
    data = load_data(data_dir).to(device)
    augmenter = BatchAugmenter(choose_policy("auto", data.info.imgsz), mean=data.info.mean, std=data.info.std,
                               num_classes=data.num_classes, device=device, seed=seed + 1, label_smoothing=0.1,
                               channels_last=device.type in ("cuda", "cpu"))
    order = batch_indices(data.train_x.shape[0], batch, torch.Generator(device=device).manual_seed(seed), device)
    for step in range(batches + 5):
        if step == 5:  # first calls allocate
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        idx = next(order)
        augmenter.train_batch(data.train_x[idx], data.train_y[idx])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1000 * (time.perf_counter() - start) / batches


def loader_pipeline_ms(dataset: JpegFolder, *, batch: int, workers: int, seed: int, batches: int) -> float:
    """ms per batch for the DataLoader alone (decode + per-sample aug + collate), workers started."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    batches = max(1, min(batches, len(loader) - 1))
    it = iter(loader)
    for _ in range(min(5, len(loader) - batches)):  # worker start-up and the first prefetches
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return 1000 * (time.perf_counter() - start) / batches


def matmul_tflops(device: torch.device, dtype: torch.dtype, *, size: int, reps: int) -> float:
    """TFLOP/s of a dense square matmul on ``device`` in ``dtype``: the attainable peak MFU is stated against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ImageFolder with train/<class>/ (JPEGs)")
    parser.add_argument("--model", default="tiny", help="'tiny' (built-in small CNN) or any zoo MODEL")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps left out of 'steady'")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", default="auto", help="autocast for both sides (auto = train_proxy's default)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="minimal",
                        help="minimal: pad-crop + flip + smoothing; full: + Mixup/CutMix + EMA (seed 001's recipe)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="datasheet peak of the device and dtype")
    parser.add_argument("--pipeline-batches", type=int, default=20, help="batches timed for the input-only figures")
    parser.add_argument("--out", type=Path, default=None, help="also write the result (markdown) here")
    args = parser.parse_args()

    if not (args.data / "train").is_dir():
        raise SystemExit(f"no ImageFolder train/ under {args.data}; pass --data")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, allow_mps=True)  # as train_proxy, which it measures
    recipe = RECIPES[args.recipe]
    stats = load_data(args.data).info
    dataset = JpegFolder(args.data / "train", stats.mean, stats.std, pad=max(1, round(0.125 * stats.imgsz)))
    common = dict(steps=args.steps, batch=args.batch, lr=args.lr, device=device, seed=args.seed, skip=args.skip,
                  amp=args.amp, recipe=recipe)
    channels_last = device.type in ("cuda", "cpu")  # what train_proxy does
    # (workers, same layout as ours, EMA implementation); the last rows isolate one difference each
    baselines = [(w, channels_last, "seed") for w in args.workers] + [(0, False, "seed")]
    if recipe.ema:
        baselines.append((0, channels_last, "nasbench"))

    runs: dict[str, list[tuple[float, float]]] = {}
    pipes: dict[str, list[float]] = {}  # input pipeline alone, ms per batch
    for repeat in range(args.repeats):  # interleaved, so drift hits every pipeline alike
        model = build_model(args.model, stats.num_classes, args.seed)
        runs.setdefault("nasbench train_proxy (resident uint8, batched on-device aug)", []).append(
            ours_run(model, args.data, **common))
        for workers, same_layout, ema_style in baselines:
            model = build_model(args.model, stats.num_classes, args.seed)
            np.random.seed(args.seed + repeat)
            name = f"DataLoader + per-image Pillow decode + per-sample aug, workers={workers}"
            name += "" if same_layout == channels_last else ", plain NCHW"
            name += ", nasbench's EMA" if ema_style == "nasbench" else ""
            runs.setdefault(name, []).append(baseline_run(model, dataset, workers=workers, channels_last=same_layout,
                                                          ema_style=ema_style, **common))
        pipes.setdefault("ours", []).append(ours_pipeline_ms(args.data, batch=args.batch, device=device,
                                                             seed=args.seed, batches=args.pipeline_batches))
        for workers in args.workers:
            pipes.setdefault(f"DataLoader workers={workers}", []).append(loader_pipeline_ms(
                dataset, batch=args.batch, workers=workers, seed=args.seed, batches=args.pipeline_batches))
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)

    amp_dtype = resolve_amp(args.amp, device)
    gemm_dtype = amp_dtype or torch.float32
    big = device.type == "cuda"
    gemm_tflops = matmul_tflops(device, gemm_dtype, size=8192 if big else 2048, reps=20 if big else 5)
    flops_per_image = train_flops_per_image(build_model(args.model, stats.num_classes, args.seed), stats.imgsz)

    medians = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
               for name, rs in runs.items()}
    ours_name = next(iter(medians))
    seed_style = [n for n in medians if n != ours_name and "plain" not in n and "nasbench's" not in n]
    best_baseline = max(seed_style, key=lambda n: medians[n][0])
    lines = [f"model {args.model}, recipe {args.recipe} ({recipe}), data {args.data.name} ({stats.n_train} train "
             f"images, {stats.imgsz} px), device {device_name(device)}, {torch.get_num_threads()} threads, "
             f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if device.type == "cuda" else "")
             + f", amp {args.amp}, batch {args.batch}, {args.steps} steps (steady skips {args.skip}), "
             f"median of {args.repeats} interleaved repeats", "",
             "| pipeline | steady images/s | end-to-end images/s | steady ratio (ours / this) | model TFLOP/s | MFU |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, (steady, e2e) in medians.items():
        achieved = steady * flops_per_image / 1e12
        lines.append(f"| {name} | {steady:,.0f} | {e2e:,.0f} | {medians[ours_name][0] / steady:.2f}x | "
                     f"{achieved:.3f} | {100 * achieved / gemm_tflops:.1f}% |")
    steady_ratio = medians[ours_name][0] / medians[best_baseline][0]
    e2e_ratio = medians[ours_name][1] / max(medians[n][1] for n in seed_style)
    lines += ["", f"ratio vs the best seed-style baseline ({best_baseline.split(', ')[-1]}): steady "
              f"{steady_ratio:.2f}x, end-to-end {e2e_ratio:.2f}x; target >= 1.5x on a CPU, >= 3x on a GPU"]
    lines += ["", f"MFU: training FLOPs per image = 3 x forward = {flops_per_image / 1e6:.1f} MFLOP at "
              f"{stats.imgsz} px; against a {gemm_dtype} dense matmul measured here at {gemm_tflops:.3f} TFLOP/s"
              + (f"; against the datasheet's {args.peak_tflops} TFLOP/s, ours is "
                 f"{100 * medians[ours_name][0] * flops_per_image / 1e12 / args.peak_tflops:.2f}%"
                 if args.peak_tflops else "")]

    pipe_ms = {name: statistics.median(v) for name, v in pipes.items()}
    step_ms = 1000 * args.batch / medians[ours_name][0]
    model_ms = step_ms - pipe_ms["ours"]
    lines += ["", f"input pipeline alone, ms per batch of {args.batch} (median of {args.repeats}, up to "
              f"{args.pipeline_batches} batches each): " + ", ".join(f"{n} {ms:.1f}" for n, ms in pipe_ms.items())]
    if "DataLoader workers=0" in pipe_ms:
        lines.append(f"our training step {step_ms:.1f} ms = input {pipe_ms['ours']:.1f} ms + the rest "
                     f"~{model_ms:.1f} ms; if the rest were the same on both sides, the steady ratio vs a workers=0 "
                     f"loader could be at most (rest + loader) / (rest + ours) = "
                     f"{(model_ms + pipe_ms['DataLoader workers=0']) / step_ms:.2f}x")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
