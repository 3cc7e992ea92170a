"""Latency of a forward pass on the CPU or a CUDA GPU, measured the way that holds up.

- eval mode + ``torch.inference_mode``; the caller decides whether the deploy (fused)
  form is what gets timed and records it.
- warm-up runs first (allocator, cudnn autotuning with ``cudnn.benchmark`` on, lazy init).
- CPU: the thread count is set and recorded; each run timed with ``perf_counter``.
- CUDA: each run timed with CUDA events around the forward, then synchronised; the peak
  memory of the forward is ``max_memory_allocated`` after a reset.
- several models are timed in alternating rounds (A B A B …) so that drift of a noisy
  machine (thermal, other tenants) hits all of them alike; median and p10/p90 reported.
- a time limit caps the total: fewer runs are taken for slow models, and the result says
  so (``time_limited``) instead of silently timing less.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nasbench.errors import UserError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Timing:
    """Latency of one model, with everything needed to reproduce or distrust it."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    warmup: int
    device: str  # "cpu" | "cuda"
    device_name: str
    dtype: str
    batch: int
    input_shape: tuple[int, ...]
    threads: int
    channels_last: bool
    torch_version: str
    cuda_version: str | None
    peak_mem_bytes: int | None
    time_limited: bool
    what: str  # one line: what exactly was timed


@dataclass(frozen=True)
class TimingPlan:
    """How much to time: warm-up runs, timed runs per model, rounds they are split into."""

    warmup: int = 10
    runs: int = 50
    rounds: int = 5
    time_limit_s: float = 60.0  # for all models together
    min_runs: int = 3


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; a clear error for unavailable devices."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda requested but CUDA is not available on this machine (torch "
                            f"{torch.__version__}); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type != "cpu":
        raise UserError(f"unsupported device '{device}' (use auto, cpu, cuda or cuda:N)")
    return dev


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in [0, 1])."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _make_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Return run(fn) -> elapsed ms of one call, synchronised for CUDA."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run_cuda(fn: Callable[[], object]) -> float:
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return run_cuda

    def run_cpu(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    return run_cpu


def time_models(
    models: Mapping[str, nn.Module],
    imgsz: int | Mapping[str, int] = 224,
    *,
    batch: int = 1,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    threads: int | None = None,
    plan: TimingPlan = TimingPlan(),
    forward: str = "forward",
) -> dict[str, Timing]:
    """Time each model's forward in alternating rounds; returns name -> Timing.

    ``imgsz`` may be per model. Models are moved to the device and dtype in place. The
    thread count and ``cudnn.benchmark`` are set for the timing only and restored after.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}' (use {', '.join(DTYPES)})")
    with torch_settings(threads, cudnn_benchmark=True if dev.type == "cuda" else None):
        used_threads = torch.get_num_threads()
        calls, shapes = _prepare_calls(models, imgsz, batch, dev, DTYPES[dtype], channels_last, forward)
        samples, peak_mem, rounds, time_limited = _sample(calls, dev, plan)
    context = dict(
        device=dev.type, device_name=device_name(dev), dtype=dtype, batch=batch, threads=used_threads,
        channels_last=channels_last, torch_version=torch.__version__,
        cuda_version=torch.version.cuda if dev.type == "cuda" else None, warmup=plan.warmup,
        time_limited=time_limited,
    )
    what = (f"{forward}() in eval + inference_mode, batch {batch}, {dtype}"
            f"{', channels_last' if channels_last else ''}, {'CUDA events' if dev.type == 'cuda' else 'perf_counter'}"
            f", alternating {rounds} rounds over {len(models)} model(s)")
    results = {}
    for name, times in samples.items():
        ordered = sorted(times)
        results[name] = Timing(
            median_ms=statistics.median(ordered), p10_ms=_percentile(ordered, 0.10),
            p90_ms=_percentile(ordered, 0.90), mean_ms=statistics.fmean(ordered), runs=len(ordered),
            input_shape=shapes[name], peak_mem_bytes=peak_mem[name], what=what, **context,
        )
    return results


def _prepare_calls(models: Mapping[str, nn.Module], imgsz: int | Mapping[str, int], batch: int, dev: torch.device,
                   torch_dtype: torch.dtype, channels_last: bool, forward: str):
    """Each model moved to the device/dtype/layout with its own input: name -> call, name -> shape."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    calls: dict[str, Callable[[], object]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for name, model in models.items():
        size = imgsz[name] if isinstance(imgsz, Mapping) else imgsz
        shape = (batch, 3, size, size)
        model.eval().to(device=dev, dtype=torch_dtype, memory_format=memory_format)
        x = torch.randn(shape, device=dev, dtype=torch_dtype).contiguous(memory_format=memory_format)
        method = getattr(model, forward)
        calls[name] = (lambda m=method, inp=x: m(inp))
        shapes[name] = shape
    return calls, shapes


def _sample(calls: Mapping[str, Callable[[], object]], dev: torch.device, plan: TimingPlan):
    """Warm-up, one probe run each to plan the rest within the time limit, then the timed runs
    in alternating rounds. Returns (samples ms, peak memory, rounds, time_limited)."""
    timer = _make_timer(dev)
    samples: dict[str, list[float]] = {n: [] for n in calls}
    peak_mem: dict[str, int | None] = {}
    started = time.perf_counter()
    with torch.inference_mode():
        for name, call in calls.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            for _ in range(plan.warmup):
                call()
            peak_mem[name] = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
        probe_ms = {name: timer(call) for name, call in calls.items()}
        per_round_ms = sum(probe_ms.values())
        budget_ms = max(0.0, plan.time_limit_s - (time.perf_counter() - started)) * 1e3
        affordable = int(budget_ms // max(per_round_ms, 1e-6))
        runs = max(plan.min_runs, min(plan.runs, affordable))
        rounds = max(1, min(plan.rounds, runs))
        per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
        for n_runs in per_round:
            for name, call in calls.items():
                samples[name].extend(timer(call) for _ in range(n_runs))
    return samples, peak_mem, rounds, runs < plan.runs


@contextlib.contextmanager
def torch_settings(threads: int | None, cudnn_benchmark: bool | None = None):
    """Set torch's intra-op thread count and ``cudnn.benchmark`` for a block (None: leave as
    is), and restore both after it, so timing one model changes nothing for what follows."""
    old_threads, old_benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = cudnn_benchmark
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark
