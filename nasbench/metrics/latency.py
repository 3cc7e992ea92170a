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
- the same model gets the same figure whatever ran before it in the process: glibc's heap
  is kept (``steady_heap``), so a forward never page-faults on memory an earlier forward
  handed back to the kernel (faults per timed run are recorded to show it), and Python's
  garbage collector is paused while timing (``python_gc_paused``).
- a timing taken while other processes used the CPU, or with a wide spread, is marked
  unstable (``Timing.unstable_reason``) with the load and spread that made it so.
- ``backend`` picks the runtime (``nasbench.metrics.backends``); a model that a backend
  cannot run gets ``Timing.error`` and NaN figures, and the other models are still timed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from nasbench.device import resolve_device
from nasbench.errors import UserError, first_line
from nasbench.metrics import backends
from nasbench.options import BACKENDS

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
    backend: str = "eager"
    backend_detail: str = "eager PyTorch"
    backend_max_abs_diff: float = 0.0  # output vs eager on the timed input
    backend_setup_s: float = 0.0  # export / compile time, not in the latency
    spread: float = 0.0  # (p90 - p10) / median
    other_load_cores: float | None = None  # CPU cores other processes kept busy while this model was timed
    faults_per_run: float | None = None  # minor page faults of the process per timed run (CPU)
    allocator: str = ""
    process: str = "shared"  # "isolated": timed in its own clean process; else "shared" and why
    unstable_reason: str = ""  # empty when the figure can be trusted
    error: str | None = None  # the backend could not run this model: every figure is NaN
    graph_median_ms: float | None = None  # CUDA-graph replay of the same forward (cuda_graph=True)
    graph_p10_ms: float | None = None
    graph_p90_ms: float | None = None
    graph_error: str | None = None  # why the forward could not be captured (then graph_* stay None)

    @property
    def unstable(self) -> bool:
        return bool(self.unstable_reason)


@dataclass(frozen=True)
class Stability:
    """When a timing is not trusted: a wide spread, or other processes on the CPU while it ran."""

    max_spread: float = 0.25  # (p90 - p10) / median
    min_spread_ms: float = 0.25  # below this p90 - p10 is scheduler jitter, not a sign (sub-ms models)
    max_other_load_cores: float = 0.25  # CPU cores' worth of other processes' time during the timed runs

    def reason(self, spread: float, median_ms: float, other_load: float | None) -> str:
        problems = []
        if other_load is not None and other_load > self.max_other_load_cores:
            problems.append(f"other processes kept {other_load:.2f} CPU cores busy")
        if spread > self.max_spread and spread * median_ms > self.min_spread_ms:
            problems.append(f"spread (p90 - p10) / median {100 * spread:.0f}%")
        return "; ".join(problems)


@dataclass(frozen=True)
class TimingPlan:
    """How much to time: warm-up runs, timed runs per model, rounds they are split into."""

    warmup: int = 10
    runs: int = 50
    rounds: int = 5
    time_limit_s: float = 60.0  # for all models together
    min_runs: int = 3
    stability: Stability = field(default_factory=Stability)
    # CPU eager: each model timed in its own child of a clean fork server (metrics/isolation.py),
    # so what ran before in this process cannot change its figure.
    isolate: bool = True


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def steady_heap() -> str:
    """Keep freed memory in the process's heap from now on; returns what was done (recorded in rows).

    glibc gives large freed blocks back to the kernel (mmap'd blocks always; the heap top
    beyond a threshold that adapts to what was freed before). A forward then page-faults on
    every fresh feature map: 2,500-3,300 minor faults per mobilevit_xxs forward in a fresh
    process, none after fvcore/thop had left the heap fragmented, a 20-30% difference in
    latency from history alone. With mmap off and trimming off, every forward after the
    first reuses the same heap: no faults, whatever ran before. Process-wide and lasting:
    the process keeps its peak memory until it exits (what a long-running inference server
    with jemalloc/tcmalloc does too).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return "system default (no glibc mallopt)"
    kept = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return "glibc heap kept (mmap and trim off)" if kept else "system default (mallopt refused)"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_cpu_s() -> float | None:
    """CPU seconds all processes have spent busy since boot (/proc/stat; None elsewhere).

    Busy = user + nice + system + irq + softirq + steal: steal is time the hypervisor gave
    to other machines, which slows a timing just like a local process does.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]] + [0] * 8
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


@dataclass
class _Chunk:
    """What one model's share of the timed runs cost the machine besides the model itself."""

    wall_s: float = 0.0
    other_cpu_s: float = 0.0
    faults: int = 0
    known_load: bool = True

    def add(self, fn: Callable[[], None]) -> None:
        busy0, own0, faults0, t0 = _busy_cpu_s(), time.process_time(), _minor_faults(), time.perf_counter()
        fn()
        wall, own = time.perf_counter() - t0, time.process_time() - own0
        busy1 = _busy_cpu_s()
        self.wall_s += wall
        self.faults += _minor_faults() - faults0
        if busy0 is None or busy1 is None:
            self.known_load = False
        else:
            self.other_cpu_s += (busy1 - busy0) - own  # signed: /proc/stat ticks every 10 ms, errors cancel

    def load_cores(self) -> float | None:
        return max(0.0, self.other_cpu_s) / self.wall_s if self.known_load and self.wall_s > 0 else None


class LocalRunner:
    """One model's forward timed in this process: warm-up, a planning probe, chunks of runs.

    The child of ``metrics/isolation.py`` drives the same class, so a model is timed the same
    way whether it is isolated or not."""

    def __init__(self, call: Callable[[], object], dev: torch.device) -> None:
        self.call, self.dev, self.timer, self.load = call, dev, _make_timer(dev), _Chunk()

    def warmup(self, runs: int) -> int | None:
        """Peak CUDA memory of the warm-up forwards (None on the CPU)."""
        with torch.inference_mode(), python_gc_paused():
            if self.dev.type == "cuda":
                torch.cuda.synchronize(self.dev)
                torch.cuda.reset_peak_memory_stats(self.dev)
            for _ in range(runs):
                self.call()
            return torch.cuda.max_memory_allocated(self.dev) if self.dev.type == "cuda" else None

    def probe(self) -> float:
        with torch.inference_mode(), python_gc_paused():
            return self.timer(self.call)

    def chunk(self, runs: int) -> list[float]:
        out: list[float] = []
        with torch.inference_mode(), python_gc_paused():
            self.load.add(lambda: out.extend(self.timer(self.call) for _ in range(runs)))
        return out

    def chunk_load(self) -> _Chunk:
        return self.load

    def close(self) -> None:
        pass


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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
    backend: str = "eager",
    cuda_graph: bool = False,
) -> dict[str, Timing]:
    """Time each model's forward in alternating rounds; returns name -> Timing.

    ``imgsz`` may be per model. Models are moved to the device and dtype in place. The
    thread count and ``cudnn.benchmark`` are set for the timing only and restored after.
    A model the backend cannot run gets a Timing with ``error`` set and NaN figures.
    ``cuda_graph`` also times the forward replayed from a CUDA graph, in the same rounds
    (``graph_*`` fields): the difference is what kernel launches cost.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}' (use {', '.join(DTYPES)})")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}' (use {', '.join(BACKENDS)})")
    check_cuda_graph(cuda_graph, dev, backend)
    allocator = steady_heap()
    with torch_settings(threads, cudnn_benchmark=True if dev.type == "cuda" else None):
        used_threads = torch.get_num_threads()
        setup = _Setup(imgsz, batch, dev, DTYPES[dtype], channels_last, backend, used_threads,
                       plan.isolate and dev.type == "cpu" and backend == "eager" and not cuda_graph)
        runners, prepared, shapes, errors, processes = _prepare_runners(models, setup)
        try:
            graphs, graph_errors = capture_graphs({n: p.call for n, p in prepared.items()}, dev) if cuda_graph \
                else ({}, {})
            samples, peak_mem, chunks, rounds, time_limited = _sample(
                {**runners, **{graph_key(n): LocalRunner(g, dev) for n, g in graphs.items()}}, plan)
        finally:
            for runner in runners.values():
                runner.close()
    context = dict(
        device=dev.type, device_name=device_name(dev), dtype=dtype, batch=batch, threads=used_threads,
        channels_last=channels_last, torch_version=torch.__version__,
        cuda_version=torch.version.cuda if dev.type == "cuda" else None, warmup=plan.warmup,
        time_limited=time_limited, backend=backend, allocator=allocator,
        what=(f"forward() on {backend} in eval + inference_mode, batch {batch}, {dtype}"
              f"{', channels_last' if channels_last else ''}, {'CUDA events' if dev.type == 'cuda' else 'perf_counter'}"
              f", Python GC paused, alternating {rounds} rounds over {len(prepared)} model(s)"
              + (", each in its own clean process" if setup.isolate else "")),
    )
    results = {name: _failed(message, shapes[name], context) for name, message in errors.items()}
    for name in prepared:
        timing = _summary(samples[name], prepared[name], chunks[name], peak_mem[name], shapes[name], plan,
                          {**context, "process": processes[name]})
        if cuda_graph:
            timing = _with_graph(timing, samples.get(graph_key(name)), graph_errors.get(name))
        results[name] = timing
    return {name: results[name] for name in models}


def check_cuda_graph(cuda_graph: bool, dev: torch.device, backend: str) -> None:
    if cuda_graph and dev.type != "cuda":
        raise UserError("--cuda-graph needs --device cuda (CUDA graphs replay GPU kernels)")
    if cuda_graph and backend != "eager":
        raise UserError(f"--cuda-graph replays eager forwards; {backend} manages its own launches: use --backend "
                        "eager with it")


def graph_key(name: str) -> str:
    return f"{name}\0cuda-graph"


def capture_graphs(calls: Mapping[str, Callable[[], object]], dev: torch.device):
    """Each forward captured into a CUDA graph (after warm-up on a side stream, as capture
    requires): (name -> replay, name -> one line for a forward that cannot be captured, e.g.
    one that synchronises or reads a value on the host)."""
    graphs: dict[str, Callable[[], object]] = {}
    errors: dict[str, str] = {}
    with torch.inference_mode():
        for name, call in calls.items():
            try:
                side = torch.cuda.Stream(dev)
                side.wait_stream(torch.cuda.current_stream(dev))
                with torch.cuda.stream(side):
                    for _ in range(3):
                        call()
                torch.cuda.current_stream(dev).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    call()
                graphs[name] = graph.replay
            except Exception as exc:  # noqa: BLE001 - any capture failure: this model keeps its eager figure
                torch.cuda.synchronize(dev)
                errors[name] = f"cannot be captured in a CUDA graph: {type(exc).__name__}: {first_line(exc)}"
    return graphs, errors


def _with_graph(timing: Timing, times: list[float] | None, error: str | None) -> Timing:
    if not times:
        return replace(timing, graph_error=error or "not captured")
    ordered = sorted(times)
    return replace(timing, graph_median_ms=statistics.median(ordered), graph_p10_ms=_percentile(ordered, 0.10),
                   graph_p90_ms=_percentile(ordered, 0.90))


def _summary(times: list[float], prepared: backends.Prepared, chunk: _Chunk, peak_mem: int | None,
             shape: tuple[int, ...], plan: TimingPlan, context: dict) -> Timing:
    ordered = sorted(times)
    median = statistics.median(ordered)
    p10, p90 = _percentile(ordered, 0.10), _percentile(ordered, 0.90)
    spread = (p90 - p10) / median if median > 0 else 0.0
    load = chunk.load_cores()
    return Timing(
        median_ms=median, p10_ms=p10, p90_ms=p90, mean_ms=statistics.fmean(ordered), runs=len(ordered),
        input_shape=shape, peak_mem_bytes=peak_mem, backend_detail=prepared.detail,
        backend_max_abs_diff=prepared.max_abs_diff, backend_setup_s=prepared.setup_s, spread=spread,
        other_load_cores=load, faults_per_run=None if context["device"] == "cuda" else chunk.faults / len(ordered),
        unstable_reason=plan.stability.reason(spread, median, load), **context,
    )


def _failed(message: str, shape: tuple[int, ...], context: dict) -> Timing:
    nan = math.nan
    return Timing(median_ms=nan, p10_ms=nan, p90_ms=nan, mean_ms=nan, runs=0, input_shape=shape,
                  peak_mem_bytes=None, backend_detail="", backend_max_abs_diff=nan, error=message, **context)


@dataclass(frozen=True)
class _Setup:
    """How every model of one ``time_models`` call is put on the device and the backend."""

    imgsz: int | Mapping[str, int]
    batch: int
    dev: torch.device
    torch_dtype: torch.dtype
    channels_last: bool
    backend: str
    threads: int
    isolate: bool  # time each model in its own clean child process

    def shape(self, name: str) -> tuple[int, ...]:
        size = self.imgsz[name] if isinstance(self.imgsz, Mapping) else self.imgsz
        return (self.batch, 3, size, size)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def prepare_local(model: nn.Module, shape: tuple[int, ...], setup: _Setup) -> backends.Prepared:
    """``model`` on the device, dtype and layout with its own input, on the backend (in this process)."""
    model.eval().to(device=setup.dev, dtype=setup.torch_dtype, memory_format=setup.memory_format)
    x = torch.randn(shape, device=setup.dev, dtype=setup.torch_dtype).contiguous(memory_format=setup.memory_format)
    return backends.prepare(setup.backend, model, x, setup.threads)


def _prepare_runners(models: Mapping[str, nn.Module], setup: _Setup):
    """A runner per model (in a clean child process when ``setup.isolate`` and the model can be
    rebuilt there, else here): (runners, Prepared, input shapes, backend errors, process notes)."""
    from nasbench.metrics import isolation

    runners: dict[str, LocalRunner | isolation.ChildRunner] = {}
    prepared: dict[str, backends.Prepared] = {}
    shapes = {name: setup.shape(name) for name in models}
    errors: dict[str, str] = {}
    processes: dict[str, str] = {}
    for name, model in models.items():
        try:
            if setup.isolate:
                try:
                    runners[name], prepared[name] = isolation.start_child(model, shapes[name], setup)
                    processes[name] = "isolated"
                    continue
                except isolation.NotIsolated as exc:
                    processes[name] = f"shared ({exc})"
            prepared[name] = prepare_local(model, shapes[name], setup)
            runners[name] = LocalRunner(prepared[name].call, setup.dev)
            processes.setdefault(name, "shared")
        except backends.BackendError as exc:
            errors[name] = str(exc)
    return runners, prepared, shapes, errors, processes


def _sample(runners: Mapping[str, LocalRunner], plan: TimingPlan):
    """Warm-up, one probe run each to plan the rest within the time limit, then the timed runs
    in alternating rounds. Returns (samples ms, peak memory, per-model load, rounds, time_limited)."""
    samples: dict[str, list[float]] = {n: [] for n in runners}
    started = time.perf_counter()
    peak_mem = {name: runner.warmup(plan.warmup) for name, runner in runners.items()}
    probe_ms = {name: runner.probe() for name, runner in runners.items()}
    per_round_ms = sum(probe_ms.values())
    budget_ms = max(0.0, plan.time_limit_s - (time.perf_counter() - started)) * 1e3
    affordable = int(budget_ms // max(per_round_ms, 1e-6))
    runs = max(plan.min_runs, min(plan.runs, affordable))
    rounds = max(1, min(plan.rounds, runs))
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    for n_runs in per_round:
        for name, runner in runners.items():
            samples[name].extend(runner.chunk(n_runs))
    chunks = {name: runner.chunk_load() for name, runner in runners.items()}
    return samples, peak_mem, chunks, rounds, runs < plan.runs


@contextlib.contextmanager
def python_gc_paused():
    """Python's cyclic garbage collector off for a block (collected once first), as timeit and
    torch.utils.benchmark do: a collection's cost grows with every object the process holds
    (other models, fvcore's traces), so left on it would make a forward's latency depend on
    what else lives in the process."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
