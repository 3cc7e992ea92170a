"""Short, fast, reproducible proxy training that ranks NAS candidates.

``train_proxy(model, data, Recipe(...), EvalPlan(...))`` trains any ``nn.Module`` classifier for a fixed number
of steps on resident data (see ``data.py``) with on-device batched augmentation (see
``augment.py``) and returns a ``ProxyResult``: final top-1/top-5, the learning curve,
throughput and the context needed to trust the numbers.

Recipe (the usual short-schedule classification recipe, scaled down): AdamW (no weight
decay on norms and biases), linear warm-up then cosine decay to 1% of the peak rate,
label smoothing, gradient-norm clipping, optional weight EMA, optional Mixup/CutMix,
channels-last memory format (CUDA and CPU) and autocast (bf16, or fp16 with a gradient
scaler; on by default on CUDA only: on a CPU with AMX, bf16 made a small CNN 2.3x faster
but mobilevit_xxs 20% slower, so there it is opt-in with ``amp="bf16"``).

Reproducibility: the caller's seed drives the batch order, the augmentation draws and
the global torch RNG (dropout, drop-path) inside a forked RNG state, and cuDNN runs in
deterministic mode for the duration, so the same call gives the same curve on the same
machine (same thread count). Build the model after ``torch.manual_seed(seed)`` too (the
``train`` command does) so its initial weights are fixed as well.
"""

from __future__ import annotations

import contextlib
import copy
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.device import resolve_device
from nasbench.errors import UserError, first_line
from nasbench.metrics.cost import train_flops_per_image
from nasbench.proxy.augment import AUGMENTS, BatchAugmenter, choose_policy
from nasbench.proxy.data import DataInfo, ProxyData, load_data

DEFAULT_EMA_DECAY = 0.999
AMP_CHOICES = ("auto", "on", "off", "bf16", "fp16")

# callback(step, val_top1_pct) -> True to stop (e.g. an Optuna pruner said so)
StopCallback = Callable[[int, float], bool]
# progress(step, total_steps, last_evaluation_or_None); called after every step
ProgressHook = Callable[[int, int, "CurvePoint | None"], None]


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation during training."""

    step: int
    train_loss: float  # mean training loss over the steps since the previous evaluation
    val_loss: float  # mean cross-entropy on the val set (no smoothing)
    val_top1: float  # %, on the val set
    lr: float  # learning rate at this step
    elapsed_s: float  # since the start of training (data loading excluded)
    val_images: int | None = None  # how many val images this evaluation used (None: not recorded)


@dataclass(frozen=True)
class ProxyResult:
    """What a proxy run measured, with the context needed to trust and repeat it.

    Accuracies are percentages of the val set; they come from the EMA weights when EMA
    is on. ``images_per_s`` counts training images over training-step time only (data
    decoding and evaluations excluded); ``wall_s`` is the whole call.
    """

    top1: float  # %
    top5: float  # % (top-k with k = min(5, classes))
    val_loss: float
    curve: tuple[CurvePoint, ...]
    images_per_s: float
    wall_s: float
    train_s: float
    load_s: float  # decoding/generating the data when train_proxy loaded it, else 0
    peak_mem_bytes: int
    peak_mem_kind: str  # what peak_mem_bytes measures
    data: DataInfo
    seed: int
    device: str
    steps: int  # planned
    steps_done: int  # fewer when stopped early or diverged
    batch: int
    imgsz: int
    lr: float
    amp: str  # "off" | "bf16" | "fp16"
    ema: float | None  # decay, None when off
    mixup: float  # Beta alpha, 0 = off
    cutmix: float
    label_smoothing: float
    augment: str
    stopped_early: bool
    diverged: bool
    params: int
    threads: int
    torch_version: str
    train_flops_per_image: int | None = None  # 3 x forward FLOPs at imgsz; None when uncountable

    @property
    def synthetic(self) -> bool:
        return self.data.synthetic

    @property
    def model_gflops_per_s(self) -> float | None:
        """Model FLOPs per second of the training steps (MFU's numerator), in GFLOP/s."""
        if self.train_flops_per_image is None or not math.isfinite(self.images_per_s):
            return None
        return self.train_flops_per_image * self.images_per_s / 1e9

    def curve_rows(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.curve]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("curve", "data")}
        out["model_gflops_per_s"] = self.model_gflops_per_s
        out["curve"] = self.curve_rows()
        out["data"] = self.data.to_dict()
        return out


# ---------------------------------------------------------------- setup helpers


def resolve_amp(amp: bool | str | None, dev: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for full fp32. "auto" = on for CUDA only."""
    if amp is True:
        choice = "on"
    elif amp is False or amp is None:
        choice = "off"
    else:
        choice = str(amp)
    if choice not in AMP_CHOICES:
        raise UserError(f"unknown --amp '{amp}' (choose one of {', '.join(AMP_CHOICES)})")
    if choice == "off" or (choice == "auto" and dev.type != "cuda"):
        return None
    if choice in ("auto", "on"):
        if dev.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if dev.type == "mps" else torch.bfloat16
    if choice == "fp16" and dev.type == "cpu":
        raise UserError("--amp fp16 needs a GPU; use --amp bf16 (or off) on the CPU")
    return torch.bfloat16 if choice == "bf16" else torch.float16


def resolve_ema(ema: bool | float | None) -> float | None:
    if ema is None or ema is False or ema == 0:
        return None
    decay = DEFAULT_EMA_DECAY if ema is True else float(ema)
    if not 0.0 < decay < 1.0:
        raise UserError(f"EMA decay must be between 0 and 1, got {ema}")
    return decay


def plan_steps(steps: int | None, epochs: float | None, n_train: int, batch: int) -> int:
    if steps is not None and epochs is not None:
        raise UserError("give either --steps or --epochs, not both")
    if batch < 1:
        raise UserError(f"--batch must be at least 1, got {batch}")
    if batch > n_train:
        raise UserError(f"--batch {batch} is larger than the training set ({n_train} images); use a smaller --batch")
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be at least 1, got {steps}")
        return steps
    if epochs is None:
        raise UserError("give --steps or --epochs")
    if epochs <= 0:
        raise UserError(f"--epochs must be positive, got {epochs}")
    return max(1, round(epochs * (n_train // batch)))


def lr_at(step: int, total: int, peak: float, warmup_steps: int, floor_frac: float = 0.01) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps``, then cosine to ``floor_frac * peak``."""
    if step <= warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * (floor_frac + (1 - floor_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def eval_steps(total: int, evals: int) -> list[int]:
    """``evals`` evaluation steps spread evenly, the last one at ``total``."""
    return sorted({max(1, round(total * k / evals)) for k in range(1, evals + 1)})


def adamw(model: nn.Module, lr: float, weight_decay: float, dev: torch.device) -> torch.optim.AdamW:
    """AdamW without weight decay on 1-D tensors (norm scales, biases, scalars)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise UserError("the model has no trainable parameters")
    groups = [
        {"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    # One fused kernel per parameter on CUDA and on the CPU (there measured 3-4.5x faster
    # than the multi-tensor path: mobilevit_xxs 2.3 vs 7.0 ms a step, ghostnetv3_100 11 vs
    # 50 ms, 2 threads); MPS keeps the multi-tensor path.
    speed = {"fused": True} if dev.type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), **speed)


class WeightEma:
    """Exponential moving average of a model's weights and float buffers.

    The decay ramps up as (1 + n) / (10 + n) so short runs are not dominated by the
    random initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        self._float = [(e, m) for e, m in pairs if e.is_floating_point()]
        self._other = [(e, m) for e, m in pairs if not e.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self._float:
            torch._foreach_lerp_([e for e, _ in self._float], [m for _, m in self._float], 1 - decay)
        for e, m in self._other:  # e.g. BatchNorm's num_batches_tracked
            e.copy_(m)


def batch_indices(n: int, batch: int, gen: torch.Generator, dev: torch.device) -> Iterator[torch.Tensor]:
    """Endless epochs of a fresh random permutation, cut into full batches."""
    while True:
        order = torch.randperm(n, generator=gen, device=dev)
        for start in range(0, n - batch + 1, batch):
            yield order[start : start + batch]


def stratified_subset(labels: torch.Tensor, count: int, num_classes: int) -> torch.Tensor:
    """Indices of ``count`` images, the classes taken in turn (every class's first image in
    stored order, then every class's second, ...), in ascending order.

    No randomness: every candidate of a search is scored on the same images, so its
    intermediate values stay comparable with the other trials' for pruning.
    """
    n = labels.shape[0]
    if count >= n:
        return torch.arange(n, device=labels.device)
    by_class = torch.argsort(labels, stable=True)
    sorted_labels = labels[by_class]
    per_class = torch.bincount(sorted_labels, minlength=num_classes)
    first_of_class = torch.cumsum(per_class, 0) - per_class
    rank_in_class = torch.arange(n, device=labels.device) - first_of_class[sorted_labels]
    turn_order = torch.argsort(rank_in_class * num_classes + sorted_labels)
    return by_class[turn_order[:count]].sort().values


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    num_classes: int,
    augmenter: BatchAugmenter,
    batch: int,
    amp_dtype: torch.dtype | None,
) -> tuple[float, float, float]:
    """(mean cross-entropy, top-1 %, top-5 %) on the images given (uint8) and their labels."""
    was_training = model.training
    model.eval()
    dev = val_x.device
    k = min(5, num_classes)
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    hits1 = torch.zeros((), device=dev, dtype=torch.int64)
    hits5 = torch.zeros((), device=dev, dtype=torch.int64)
    for start in range(0, val_x.shape[0], batch):
        x = augmenter.eval_batch(val_x[start : start + batch])
        y = val_y[start : start + batch]
        with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        hit = logits.topk(k, dim=1).indices == y[:, None]
        hits1 += hit[:, 0].sum()
        hits5 += hit.any(dim=1).sum()
    model.train(was_training)
    n = val_x.shape[0]
    return loss_sum.item() / n, 100.0 * hits1.item() / n, 100.0 * hits5.item() / n


@contextlib.contextmanager
def deterministic_cudnn(dev: torch.device) -> Iterator[None]:
    """cuDNN deterministic algorithms for the run, previous settings restored after."""
    if dev.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(dev)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def _peak_memory(dev: torch.device) -> tuple[int, str]:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev), "cuda max allocated during the run"
    if dev.type == "mps":
        return torch.mps.driver_allocated_memory(), "mps driver-allocated at the end"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024), "process peak RSS (whole process lifetime)"


# ---------------------------------------------------------------- the trainer
@dataclass(frozen=True)
class Recipe:
    """How a proxy run trains. ``steps`` or ``epochs`` sets the length (neither: 300 steps);
    ``warmup`` is a fraction of the steps; ``mixup``/``cutmix`` are Beta alphas (0 = off);
    ``ema`` is True or a decay; ``amp`` one of AMP_CHOICES (or a bool)."""

    steps: int | None = None
    epochs: float | None = None
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    amp: bool | str | None = "auto"
    mixup: float = 0.0
    cutmix: float = 0.0
    ema: bool | float | None = None
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    augment: str = "auto"


@dataclass(frozen=True)
class EvalPlan:
    """When and on what a proxy run is evaluated: ``evals`` evaluations spread over the run
    (the last at the end, always on the whole val set); ``probe_val`` (None = off) scores the
    earlier ones on that many val images, classes in turn, the same for every call (for a
    search they only steer pruning); ``batch`` defaults to twice the training batch."""

    evals: int = 10
    batch: int | None = None
    probe_val: int | None = None


@dataclass
class _Run:
    """What the training loop shares: the model, its data and optimiser state."""

    model: nn.Module
    data: ProxyData
    recipe: Recipe
    dev: torch.device
    amp_dtype: torch.dtype | None
    augmenter: BatchAugmenter
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    weight_ema: WeightEma | None

    @property
    def scored(self) -> nn.Module:
        return self.weight_ema.module if self.weight_ema else self.model


@dataclass
class _Outcome:
    curve: list[CurvePoint]
    steps_done: int
    top5: float
    train_s: float
    stopped_early: bool
    diverged: bool


def check_recipe(recipe: Recipe, evaluation: EvalPlan) -> None:
    """One-line errors for settings no run can use, before any data is decoded."""
    if recipe.steps is not None and recipe.steps < 1:
        raise UserError(f"--steps must be at least 1, got {recipe.steps}")
    if evaluation.probe_val is not None and evaluation.probe_val < 1:
        raise UserError(f"probe_val must be at least 1 image, got {evaluation.probe_val}")
    for name, value in (("--lr", recipe.lr), ("--evals", evaluation.evals)):
        if not value > 0 or not math.isfinite(value):  # nan fails every comparison
            raise UserError(f"{name} must be positive, got {value}")
    if not 0.0 <= recipe.warmup < 1.0:
        raise UserError(f"warmup must be a fraction of the steps in [0, 1), got {recipe.warmup}")


def train_proxy(
    model: nn.Module,
    data: ProxyData | str | Path | None = None,
    recipe: Recipe = Recipe(),
    evaluation: EvalPlan = EvalPlan(),
    *,
    imgsz: int | None = None,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    val_split: float = 0.1,
    callback: StopCallback | None = None,
    progress: ProgressHook | None = None,
) -> ProxyResult:
    """Train ``model`` (logits over ``data``'s classes) briefly; return what it reached.

    ``data`` is a ``ProxyData`` (load once with ``load_data`` and reuse it across
    candidates) or a source for ``load_data`` (None = the synthetic task). ``imgsz`` is the
    training side in px (default: the data's stored side; other sizes are resized on the
    device). ``callback(step, val_top1)`` runs after each intermediate evaluation and stops
    the run by returning True. The last evaluation, which gives ``top1``, always uses the
    whole val set. The model is left in eval mode, holding the EMA weights when EMA is on.
    """
    start = time.perf_counter()
    dev = resolve_device(device, allow_mps=True)  # the loop synchronises MPS and reads its memory
    amp_dtype, ema_decay = resolve_amp(recipe.amp, dev), resolve_ema(recipe.ema)
    if recipe.steps is None and recipe.epochs is None:
        recipe = replace(recipe, steps=300)
    check_recipe(recipe, evaluation)
    load_s = 0.0
    if not isinstance(data, ProxyData):
        data = load_data(data, imgsz=imgsz, seed=seed, val_split=val_split)
        load_s = time.perf_counter() - start
    data = data.to(dev)
    total = plan_steps(recipe.steps, recipe.epochs, data.train_x.shape[0], recipe.batch)
    out_size = imgsz or data.info.imgsz
    run = _setup(model, data, recipe, dev, seed, out_size, amp_dtype, ema_decay)
    outcome = _train(run, total, evaluation, seed, callback, progress)
    if run.weight_ema is not None:
        model.load_state_dict(run.weight_ema.module.state_dict())
    model.eval()
    return _result(run, outcome, total, out_size, seed, wall_s=time.perf_counter() - start, load_s=load_s)


def _setup(model: nn.Module, data: ProxyData, recipe: Recipe, dev: torch.device, seed: int, out_size: int,
           amp_dtype: torch.dtype | None, ema_decay: float | None) -> _Run:
    # Channels-last suits cuDNN and oneDNN convolutions: measured 12-25% faster training
    # steps on a 2-core CPU for a small CNN and mobilevit_xxs at 32 px. (MPS: left alone.)
    channels_last = dev.type in ("cuda", "cpu")
    augmenter = BatchAugmenter(choose_policy(recipe.augment, out_size), mean=data.info.mean, std=data.info.std,
                               num_classes=data.num_classes, device=dev, seed=seed + 1,
                               label_smoothing=recipe.label_smoothing, mixup=recipe.mixup, cutmix=recipe.cutmix,
                               channels_last=channels_last)
    model = model.to(dev, memory_format=torch.channels_last) if channels_last else model.to(dev)
    model.train()
    optimizer = adamw(model, recipe.lr, recipe.weight_decay, dev)
    scaler = torch.amp.GradScaler(dev.type) if amp_dtype == torch.float16 else None
    weight_ema = WeightEma(model, ema_decay) if ema_decay else None
    return _Run(model, data, recipe, dev, amp_dtype, augmenter, optimizer, scaler, weight_ema)


def _score(run: _Run, val_x: torch.Tensor, val_y: torch.Tensor, eval_batch: int | None) -> tuple[float, float, float]:
    return evaluate(run.scored, val_x, val_y, run.data.num_classes, run.augmenter,
                    eval_batch or 2 * run.recipe.batch, run.amp_dtype)


def _probe_set(data: ProxyData, probe_val: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the intermediate evaluations score (the whole val set when no probe)."""
    if probe_val is None or probe_val >= data.val_y.shape[0]:
        return data.val_x, data.val_y
    probe = stratified_subset(data.val_y, probe_val, data.num_classes)
    return data.val_x[probe], data.val_y[probe]


def _step(run: _Run, x: torch.Tensor, targets: torch.Tensor, first: bool) -> torch.Tensor:
    """One training step; returns the loss (not synchronised)."""
    with torch.autocast(run.dev.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
        logits = _first_forward(run.model, x, run.data.num_classes) if first else run.model(x)
    loss = F.cross_entropy(logits.float(), targets)  # soft targets: mixing + smoothing
    _backward_and_step(loss, run.model, run.optimizer, run.scaler, run.recipe.grad_clip)
    if run.weight_ema is not None:
        run.weight_ema.update()
    return loss.detach()


def _train(run: _Run, total: int, evaluation: EvalPlan, seed: int, callback: StopCallback | None,
           progress: ProgressHook | None) -> _Outcome:
    """The loop: steps, evaluations at ``eval_steps``, early stop by ``callback`` or divergence."""
    data, dev = run.data, run.dev
    warmup_steps = round(run.recipe.warmup * total)
    evaluate_at = set(eval_steps(total, evaluation.evals))
    last_eval = max(evaluate_at)
    probe_x, probe_y = _probe_set(data, evaluation.probe_val)
    batches = batch_indices(data.train_x.shape[0], run.recipe.batch,
                            torch.Generator(device=dev).manual_seed(seed), dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    out = _Outcome(curve=[], steps_done=0, top5=float("nan"), train_s=0.0, stopped_early=False, diverged=False)
    loss_sum, losses_since_eval = torch.zeros((), device=dev), 0
    with torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []), deterministic_cudnn(dev):
        torch.manual_seed(seed)
        segment_start = time.perf_counter()
        for step in range(1, total + 1):
            out.steps_done = step
            rate = lr_at(step, total, run.recipe.lr, warmup_steps)
            for group in run.optimizer.param_groups:
                group["lr"] = rate
            idx = next(batches)
            loss_sum += _step(run, *run.augmenter.train_batch(data.train_x[idx], data.train_y[idx]), step == 1)
            losses_since_eval += 1
            if step not in evaluate_at:
                if progress is not None:
                    progress(step, total, None)
                continue
            _sync(dev)
            out.train_s += time.perf_counter() - segment_start
            train_loss = loss_sum.item() / losses_since_eval
            val_x, val_y = (data.val_x, data.val_y) if step == last_eval else (probe_x, probe_y)
            val_loss, top1, out.top5 = _score(run, val_x, val_y, evaluation.batch)
            out.curve.append(CurvePoint(step, train_loss, val_loss, top1, rate, out.train_s, val_x.shape[0]))
            loss_sum.zero_()
            losses_since_eval = 0
            if progress is not None:
                progress(step, total, out.curve[-1])
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                out.diverged = True
                break
            if step != last_eval and callback is not None and callback(step, top1):
                out.stopped_early = True
                break
            segment_start = time.perf_counter()
    if out.curve[-1].val_images != data.val_y.shape[0] and not out.diverged:  # stopped early on a probe score
        val_loss, top1, out.top5 = _score(run, data.val_x, data.val_y, evaluation.batch)
        out.curve[-1] = replace(out.curve[-1], val_loss=val_loss, val_top1=top1, val_images=data.val_y.shape[0])
    return out


def _result(run: _Run, out: _Outcome, total: int, out_size: int, seed: int, wall_s: float,
            load_s: float) -> ProxyResult:
    recipe, last = run.recipe, out.curve[-1]
    peak, peak_kind = _peak_memory(run.dev)
    return ProxyResult(
        top1=last.val_top1, top5=out.top5, val_loss=last.val_loss, curve=tuple(out.curve),
        images_per_s=out.steps_done * recipe.batch / out.train_s if out.train_s > 0 else float("nan"),
        wall_s=wall_s, train_s=out.train_s, load_s=load_s, peak_mem_bytes=int(peak), peak_mem_kind=peak_kind,
        data=run.data.info, seed=seed, device=device_name(run.dev), steps=total, steps_done=out.steps_done,
        batch=recipe.batch, imgsz=out_size, lr=recipe.lr,
        amp="off" if run.amp_dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}[run.amp_dtype],
        ema=run.weight_ema.decay if run.weight_ema else None, mixup=recipe.mixup, cutmix=recipe.cutmix,
        label_smoothing=recipe.label_smoothing, augment=run.augmenter.policy.describe(),
        stopped_early=out.stopped_early, diverged=out.diverged, params=sum(p.numel() for p in run.model.parameters()),
        threads=torch.get_num_threads(), torch_version=torch.__version__,
        train_flops_per_image=_train_flops_or_none(run.model, out_size),
    )


def _backward_and_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float | None,
) -> None:
    """Backward, clip the gradient norm (on unscaled gradients under fp16), update."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)  # skips the update when the scaled gradients overflowed
        scaler.update()


def _train_flops_or_none(model: nn.Module, imgsz: int) -> int | None:
    """Training FLOPs per image, or None for a model the counter cannot run (it is extra
    information: a finished training run must not fail on it)."""
    try:
        return train_flops_per_image(model, imgsz)
    except Exception:
        return None


def _first_forward(model: nn.Module, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The first forward, with a one-line error when the model does not fit the data."""
    try:
        logits = model(x)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(
            f"the model failed on a {list(x.shape)} input: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    if not isinstance(logits, torch.Tensor) or logits.shape != (x.shape[0], num_classes):
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(
            f"the model returned {got} for a batch of {x.shape[0]}, expected [{x.shape[0]}, {num_classes}] "
            f"logits ({num_classes} classes in the data)"
        )
    return logits


__all__ = ["AUGMENTS", "AMP_CHOICES", "CurvePoint", "EvalPlan", "ProxyResult", "Recipe", "train_proxy",
           "resolve_amp"]
