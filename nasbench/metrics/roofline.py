"""How close a measured latency is to what the hardware allows: a roofline lower bound.

    bound_ms = max(FLOPs / peak FLOP/s, bytes moved / peak bandwidth)

- peak FLOP/s: the best rate of a large matmul and of a 3x3 and a 1x1 convolution in the
  timed dtype on this device (on CUDA with TF32 allowed for fp32, as cuDNN's convolutions
  use it by default);
- peak bandwidth: the best rate of tensor copies (bytes read + written) over buffers from
  cache size to memory size, so even data that never leaves a cache cannot beat it;
- bytes moved: what eager execution reads and writes, every op's tensors once
  (``Cost.weight_bytes`` + batch x ``Cost.activation_bytes``, counted on the meta device).

Each term is a lower bound on its own, so their max is one too: a latency below it is a
bug in the bound (a test holds the presets to it). ``latency / bound`` is how far a model
runs from this machine's roofs: near 1 it is at a roof, at 20 it is overhead-bound (kernel
launches, small ops, Python), which MACs never show. Known limit: a convolution algorithm
that does fewer multiplications than its MACs (Winograd, FFT) could run below the compute
term; oneDNN does not pick one by default on the CPU.

Peak rates are measured once per device, dtype, thread count and torch version (a few
seconds) and kept in the user's cache directory; ``refresh=True`` measures them again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from nasbench.errors import UserError
from nasbench.metrics.cost import Cost
from nasbench.paths import cache_dir

PEAKS_FILE = "device_peaks.json"
FORMAT = 2  # 2: convolutions among the compute roofs


@dataclass(frozen=True)
class PeakPlan:
    """Sizes and durations of the microbenchmarks. Compute: the best rate of a square matmul
    and of a 3x3 and a 1x1 convolution (oneDNN's convolutions beat the matmul library's
    GEMM on some CPUs: 222 vs 199 GFLOP/s on this project's AMD EPYC); copies for bandwidth."""

    matmul_n: int = 2048  # square matmul side (CUDA: 8192)
    conv_shapes: tuple[tuple[int, int, int, int], ...] = ((1, 512, 28, 3), (1, 1024, 28, 1))  # batch, ch, px, k
    copy_mib: tuple[float, ...] = (0.25, 2.0, 16.0, 128.0)  # buffer sizes, cache to memory (CUDA: 64, 512)
    seconds: float = 1.0  # each kernel repeated this long, the best run kept: this machine's speed drifts


@dataclass(frozen=True)
class Peaks:
    """The best rates measured on one device at one dtype and thread count."""

    device_name: str
    dtype: str
    threads: int
    torch_version: str
    flops_per_s: float
    bytes_per_s: float
    measured_at: str
    how: str


@dataclass(frozen=True)
class Bound:
    """The roofline lower bound of one timed forward."""

    flops: int
    bytes_moved: int
    compute_ms: float
    memory_ms: float

    @property
    def ms(self) -> float:
        return max(self.compute_ms, self.memory_ms)

    @property
    def limited_by(self) -> str:
        return "compute" if self.compute_ms >= self.memory_ms else "memory"


def _best_s(fn: Callable[[], object], sync: Callable[[], None], seconds: float) -> float:
    """Fastest call of ``fn`` over ``seconds`` of repeats (at least 3), after one warm-up."""
    fn()
    sync()
    best, runs, started = float("inf"), 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - started < seconds:
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def _compute_flops_per_s(device: torch.device, dtype: torch.dtype, plan: PeakPlan, matmul_n: int,
                         sync: Callable[[], None]) -> float:
    """The best of a square matmul and the plan's convolutions, in FLOPs (2 per MAC) per second."""
    a = torch.randn(matmul_n, matmul_n, device=device).to(dtype)
    b = torch.randn(matmul_n, matmul_n, device=device).to(dtype)
    best = 2 * matmul_n**3 / _best_s(lambda: torch.mm(a, b), sync, plan.seconds)
    for batch, channels, px, k in plan.conv_shapes:
        x = torch.randn(batch * (32 if device.type == "cuda" else 1), channels, px, px, device=device).to(dtype)
        w = torch.randn(channels, channels, k, k, device=device).to(dtype)
        flops = 2 * x.shape[0] * channels * channels * k * k * px * px
        with torch.inference_mode():
            best = max(best, flops / _best_s(lambda x=x, w=w, k=k: F.conv2d(x, w, padding=k // 2), sync, plan.seconds))
    return best


def _copy_bytes_per_s(device: torch.device, sizes_mib: tuple[float, ...], seconds: float,
                      sync: Callable[[], None]) -> float:
    best = 0.0
    for mib in sizes_mib:
        src = torch.ones(int(mib * 2**20) // 4, device=device)
        dst = torch.empty_like(src)
        elapsed = _best_s(lambda d=dst, s=src: d.copy_(s), sync, seconds / len(sizes_mib))
        best = max(best, 2 * src.numel() * src.element_size() / elapsed)  # read + write
    return best


def measure_peaks(device: torch.device, dtype: str, name: str, plan: PeakPlan = PeakPlan()) -> Peaks:
    """Run the microbenchmarks now, in the current thread setting (a few seconds)."""
    from nasbench.metrics.latency import DTYPES

    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    n = 8192 if cuda else plan.matmul_n
    sizes = (64.0, 512.0) if cuda else plan.copy_mib
    old_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:  # cuDNN's convolutions use TF32 for fp32 by default: so may the roof
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        flops = _compute_flops_per_s(device, DTYPES[dtype], plan, n, sync)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old_tf32
    bandwidth = _copy_bytes_per_s(device, sizes, plan.seconds, sync)
    convs = ", ".join(f"{k}x{k} conv {c} ch at {px} px" for _b, c, px, k in plan.conv_shapes)
    how = (f"best over {plan.seconds:g} s each of a {n}x{n} {dtype} matmul, {convs}; fp32 copies of "
           f"{', '.join(f'{s:g}' for s in sizes)} MiB (read + write bytes)")
    return Peaks(device_name=name, dtype=dtype, threads=torch.get_num_threads(), torch_version=torch.__version__,
                 flops_per_s=flops, bytes_per_s=bandwidth, how=how,
                 measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _peaks_key(name: str, dtype: str, threads: int) -> str:
    return f"{name}|{dtype}|{threads} threads|torch {torch.__version__}"


def _read_cache() -> dict:
    try:
        data = json.loads((cache_dir() / PEAKS_FILE).read_text())
    except (OSError, ValueError):  # absent or damaged: measure again, it is only a cache
        return {}
    return data.get("peaks", {}) if isinstance(data, dict) and data.get("format") == FORMAT else {}


def device_peaks(device: torch.device, dtype: str, refresh: bool = False) -> Peaks:
    """This device's peak rates: from the cache, else measured now and cached."""
    from nasbench.metrics.latency import device_name
    from nasbench.report.files import atomic_write_text

    name = device_name(device)
    key = _peaks_key(name, dtype, torch.get_num_threads())
    cached = _read_cache()
    if not refresh and isinstance(cached.get(key), dict):
        try:
            return Peaks(**cached[key])
        except TypeError:  # written by another version: measure again
            pass
    peaks = measure_peaks(device, dtype, name)
    cached[key] = asdict(peaks)
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_dir() / PEAKS_FILE, json.dumps({"format": FORMAT, "peaks": cached}, indent=1))
    except (OSError, UserError):  # an unwritable cache costs a re-measurement next time, nothing else
        pass
    return peaks


def bound_of(cost: Cost, batch: int, dtype_bytes: int, peaks: Peaks) -> Bound:
    """The bound of one forward of ``batch`` images; ``cost`` was counted at batch 1 in fp32."""
    flops = 2 * cost.macs * batch
    scale = dtype_bytes / 4  # the counter ran in fp32
    moved = int((cost.weight_bytes + batch * cost.activation_bytes) * scale)
    return Bound(flops=flops, bytes_moved=moved, compute_ms=1e3 * flops / peaks.flops_per_s,
                 memory_ms=1e3 * moved / peaks.bytes_per_s)


def roofline_columns(cost: Cost, batch: int, dtype_bytes: int, peaks: Peaks, latency_ms: float) -> dict:
    """The row columns: the bound, what limits it, and how far the measured latency is above it."""
    bound = bound_of(cost, batch, dtype_bytes, peaks)
    ratio = latency_ms / bound.ms if bound.ms > 0 and latency_ms == latency_ms else float("nan")
    return {"bytes_moved": bound.bytes_moved, "bound_ms": bound.ms, "bound_by": bound.limited_by,
            "latency_vs_bound": ratio}


def peaks_line(peaks: Peaks) -> str:
    return (f"roofline peaks of {peaks.device_name} ({peaks.dtype}, {peaks.threads} threads): "
            f"{peaks.flops_per_s / 1e9:.1f} GFLOP/s, {peaks.bytes_per_s / 1e9:.1f} GB/s "
            f"(measured {peaks.measured_at}; {peaks.how})")
