"""The runtimes a model can be timed on: eager PyTorch, torch.compile, ONNX Runtime, TensorRT.

People choose a backbone for the runtime they deploy with, and a model that wins in eager
can lose after export. Each backend turns a (deploy-form, eval) model and an example input
into a call that runs one forward; before any timing its output is checked against eager
on the same input (``Tolerance``), so a backend that computes something else is never
timed. A backend that cannot take a model (export or compile error, wrong output, missing
package) raises ``BackendError`` with one line; the caller records it for that model and
times the others.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nasbench.errors import first_line


class BackendError(Exception):
    """One line: why this backend cannot run this model."""


@dataclass(frozen=True)
class Tolerance:
    """Outputs agree when max |backend - eager| <= atol + rtol * max |eager| (per output tensor)."""

    rtol: float
    atol: float

    @staticmethod
    def for_dtype(dtype: torch.dtype) -> Tolerance:
        # fp32: kernels differ in summation order only; half precision: 8-10 mantissa bits.
        return Tolerance(1e-3, 1e-4) if dtype == torch.float32 else Tolerance(2e-2, 1e-2)

    def describe(self) -> str:
        return f"max |Δ| <= {self.atol:g} + {self.rtol:g} x max |eager|"


@dataclass(frozen=True)
class Prepared:
    """A backend's forward, ready to time, with what its preparation found."""

    call: Callable[[], object]
    backend: str
    max_abs_diff: float  # against eager, on the timed input
    setup_s: float  # export / compile / engine build, not part of the latency
    detail: str  # e.g. "onnxruntime 1.32.0, CPUExecutionProvider, 2 intra-op threads"


def output_tensors(output) -> list[torch.Tensor]:
    """Every tensor of a forward's output (a tensor, tuple/list or dict), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in output_tensors(item)]
    return []


def check_outputs(got: list[torch.Tensor], want: list[torch.Tensor], tol: Tolerance, backend: str) -> float:
    """The largest |Δ| over all output tensors; BackendError when any exceeds the tolerance."""
    if len(got) != len(want):
        raise BackendError(f"{backend} returned {len(got)} output tensor(s), eager {len(want)}")
    worst = 0.0
    for g, w in zip(got, want):
        if tuple(g.shape) != tuple(w.shape):
            raise BackendError(f"{backend} output shape {tuple(g.shape)} differs from eager's {tuple(w.shape)}")
        w32, g32 = w.detach().float().cpu(), g.detach().float().cpu()
        diff = float((g32 - w32).abs().max()) if w32.numel() else 0.0
        limit = tol.atol + tol.rtol * (float(w32.abs().max()) if w32.numel() else 0.0)
        if not diff <= limit:  # also catches NaN
            raise BackendError(f"{backend} output differs from eager by {diff:.3g} (tolerance {tol.describe()} "
                               f"= {limit:.3g})")
        worst = max(worst, diff)
    return worst


def _eager(model: nn.Module, x: torch.Tensor, threads: int) -> tuple[Callable[[], object], str]:
    return (lambda: model(x)), "eager PyTorch"


# A probe compiles the model in a child process first (nasbench.metrics.compile_probe): a
# crash there costs a child, not the compare. The parent then compiles from inductor's cache.
COMPILE_PROBE_TIMEOUT_S = 900.0


def compile_crash(model: nn.Module, x: torch.Tensor, threads: int) -> str | None:
    """One line when compiling and running ``model`` kills a process, else None."""
    import signal
    import subprocess
    import sys

    buffer = io.BytesIO()
    try:
        torch.save(model, buffer)
    except Exception:  # noqa: BLE001 - a model that cannot be pickled is compiled unprobed
        return None
    try:
        done = subprocess.run([sys.executable, "-m", "nasbench.metrics.compile_probe", ",".join(map(str, x.shape)),
                               str(x.dtype).split(".")[-1], str(threads)], input=buffer.getvalue(),
                              capture_output=True, timeout=COMPILE_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"torch.compile took over {COMPILE_PROBE_TIMEOUT_S:.0f} s compiling this model"
    if done.returncode >= 0:
        return None  # compiled, or failed with an exception the in-process compile reports itself
    why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
    name = signal.Signals(-done.returncode).name
    return f"torch.compile crashed the process that compiled this model ({name}: {why})"


def _compile(model: nn.Module, x: torch.Tensor, threads: int) -> tuple[Callable[[], object], str]:
    crash = compile_crash(model, x, threads)
    if crash:
        raise BackendError(crash)
    compiled = torch.compile(model, dynamic=False)
    with torch.inference_mode():  # as it is timed: another grad mode would compile it a second time
        compiled(x)  # compiles now, so the compile time is setup, not latency
    return (lambda: compiled(x)), f"torch.compile (inductor), torch {torch.__version__}"


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """The model exported with torch's (torch.export-based) ONNX exporter, in memory."""
    buffer = io.BytesIO()
    exporter_log = logging.getLogger("torch.onnx")
    old_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..." is not news
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
        program.save(buffer)
    exporter_log.setLevel(old_level)
    return buffer.getvalue()


def _onnxruntime(model: nn.Module, x: torch.Tensor, threads: int) -> tuple[Callable[[], object], str]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("onnxruntime is not installed (pip install 'nasbench[onnx]')") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # the thread count torch is timed with
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle ORT threads spin by default; with one session per model timed in alternation their
    # spinning pools take the cores from the session being timed: efficientvit_m0 in a 3-model
    # compare on 2 cores had median 6.06 ms, p10 2.31, p90 7.70 with spinning, 2.56 / 2.39 / 2.95
    # without. Alone, spinning off cost 3.2 vs 3.1 ms.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    provider = "CUDAExecutionProvider" if x.is_cuda else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise BackendError(f"this onnxruntime has no {provider} (install onnxruntime-gpu for CUDA)")
    session = ort.InferenceSession(onnx_bytes(model, x), options, providers=[provider])
    name = session.get_inputs()[0].name
    if x.is_cuda:
        binding = session.io_binding()
        binding.bind_input(name, "cuda", x.device.index or 0, _ORT_TYPES[x.dtype], tuple(x.shape), x.data_ptr())
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda")

        def run_cuda():
            session.run_with_iobinding(binding)
            return [torch.from_dlpack(o.to_dlpack()) if hasattr(o, "to_dlpack") else torch.as_tensor(o.numpy())
                    for o in binding.get_outputs()]
        call = run_cuda
    else:
        feed = {name: x.detach().cpu().numpy()}

        def call():
            return [torch.from_numpy(o) for o in session.run(None, feed)]
    return call, f"onnxruntime {ort.__version__}, {provider}, {threads} intra-op thread(s)"


_ORT_TYPES = {torch.float32: "float32", torch.float16: "float16"}


def _tensorrt(model: nn.Module, x: torch.Tensor, threads: int) -> tuple[Callable[[], object], str]:
    if not x.is_cuda:
        raise BackendError("tensorrt needs a CUDA device (--device cuda)")
    try:
        import torch_tensorrt
    except ImportError:
        raise BackendError("torch_tensorrt is not installed on this machine") from None
    engine = torch_tensorrt.compile(model, ir="dynamo", inputs=[x], enabled_precisions={x.dtype})
    return (lambda: engine(x)), f"torch_tensorrt {torch_tensorrt.__version__}"


_BUILDERS = {"eager": _eager, "compile": _compile, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}


def _reason(exc: BaseException) -> str:
    """The first line of a compiler's message, with the next one when it only announces it
    (inductor: "backend='inductor' raised:" then the real error)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return first_line(exc)


def prepare(backend: str, model: nn.Module, x: torch.Tensor, threads: int) -> Prepared:
    """``model`` (eval, on ``x``'s device and dtype) on ``backend``, checked against eager.

    Raises BackendError with one line for anything that stops this model on this backend.
    """
    if backend == "eager":  # nothing to check against itself
        call, detail = _eager(model, x, threads)
        return Prepared(call=call, backend=backend, max_abs_diff=0.0, setup_s=0.0, detail=detail)
    with torch.inference_mode():
        want = output_tensors(model(x))
    start = time.perf_counter()
    try:
        call, detail = _BUILDERS[backend](model, x, threads)
        with torch.inference_mode():
            got = output_tensors(call())
    except BackendError:
        raise
    except Exception as exc:  # an exporter's or compiler's own error: one line for this model
        raise BackendError(f"{backend} failed: {_reason(exc)}") from None
    setup_s = time.perf_counter() - start
    diff = check_outputs(got, want, Tolerance.for_dtype(x.dtype), backend)
    return Prepared(call=call, backend=backend, max_abs_diff=diff, setup_s=setup_s, detail=detail)
