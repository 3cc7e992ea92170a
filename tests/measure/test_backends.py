"""Backends: outputs checked against eager before timing, failures one line per model."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch
from torch import nn

from nasbench.metrics import backends
from nasbench.metrics.backends import BackendError, Tolerance, check_outputs, output_tensors, prepare
from nasbench.metrics.latency import TimingPlan, time_models

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT,
                               reason="onnxruntime/onnxscript not installed (pip install 'nasbench[onnx]')")
PLAN = TimingPlan(warmup=1, runs=4, rounds=2, time_limit_s=20)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5)).eval()


class ReadsValues(nn.Module):
    """A forward no exporter can trace: it reads a tensor's value in Python."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.numpy().mean() > 0)


def test_tolerance_by_hand() -> None:
    tol = Tolerance(rtol=1e-3, atol=1e-4)
    want = [torch.tensor([10.0, -20.0])]  # limit = 1e-4 + 1e-3 * 20 = 0.0201
    assert check_outputs([torch.tensor([10.02, -20.0])], want, tol, "x") == pytest.approx(0.02, abs=1e-6)
    expected = r"differs from eager by 0.03 \(tolerance max \|Δ\| <= 0.0001 \+ 0.001 x max \|eager\| = 0.0201\)"
    with pytest.raises(BackendError, match=expected):
        check_outputs([torch.tensor([10.03, -20.0])], want, tol, "x")
    with pytest.raises(BackendError, match="differs from eager by nan"):
        check_outputs([torch.tensor([math.nan, -20.0])], want, tol, "x")
    with pytest.raises(BackendError, match="output shape"):
        check_outputs([torch.zeros(3)], want, tol, "x")
    with pytest.raises(BackendError, match="returned 2 output tensor"):
        check_outputs([torch.zeros(2), torch.zeros(2)], want, tol, "x")


def test_output_tensors_flattens_nested_outputs() -> None:
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert [t.numel() for t in output_tensors((a, [b, {"c": c}], "not a tensor"))] == [1, 2, 3]


def test_eager_is_not_checked_against_itself() -> None:
    calls = []
    net = small_net()
    net.register_forward_hook(lambda *args: calls.append(1))
    got = prepare("eager", net, torch.randn(1, 3, 8, 8), threads=1)
    assert got.max_abs_diff == 0.0 and got.setup_s == 0.0 and not calls  # no forward spent on a check


def test_a_backend_that_computes_something_else_is_never_timed(monkeypatch) -> None:
    monkeypatch.setitem(backends._BUILDERS, "compile", lambda model, x, threads: (lambda: model(x) + 1.0, "wrong"))
    timing = time_models({"net": small_net()}, 8, threads=1, plan=PLAN, backend="compile")["net"]
    assert timing.error is not None and "differs from eager" in timing.error
    assert math.isnan(timing.median_ms) and timing.runs == 0


def test_tensorrt_without_cuda_says_why() -> None:
    with pytest.raises(BackendError, match="tensorrt needs a CUDA device"):
        prepare("tensorrt", small_net(), torch.randn(1, 3, 8, 8), threads=1)


def test_onnxruntime_missing_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(BackendError, match=r"pip install 'nasbench\[onnx\]'"):
        prepare("onnxruntime", small_net(), torch.randn(1, 3, 8, 8), threads=1)


@needs_ort
def test_onnxruntime_matches_eager_and_records_its_threads() -> None:
    net = small_net()
    x = torch.randn(2, 3, 16, 16)
    got = prepare("onnxruntime", net, x, threads=1)
    with torch.inference_mode():
        want = net(x)
    assert torch.allclose(got.call()[0], want, rtol=1e-4, atol=1e-5)
    assert got.max_abs_diff <= 1e-4 and "CPUExecutionProvider, 1 intra-op thread" in got.detail


@needs_ort
def test_a_model_the_exporter_cannot_take_gets_one_line_and_the_others_are_timed() -> None:
    out = time_models({"bad": ReadsValues().eval(), "good": small_net()}, 8, threads=1, plan=PLAN,
                      backend="onnxruntime")
    assert out["bad"].error is not None and out["bad"].error.startswith("onnxruntime failed:")
    assert "\n" not in out["bad"].error and math.isnan(out["bad"].median_ms)
    assert out["good"].error is None and out["good"].runs == 4 and out["good"].median_ms > 0
    assert out["good"].backend == "onnxruntime"


def test_compile_matches_eager() -> None:
    net = small_net()
    got = prepare("compile", net, torch.randn(1, 3, 16, 16), threads=1)
    assert got.max_abs_diff <= 1e-4 and got.setup_s > 0


class AbortsWhenRun(nn.Module):
    """Stands for a compiler whose generated code corrupts the heap: running it kills the process."""

    def forward(self, x):
        import os

        os.abort()


def test_a_compile_that_kills_its_process_is_one_line_not_a_dead_compare() -> None:
    line = backends.compile_crash(AbortsWhenRun(), torch.randn(1, 3, 8, 8), threads=1)
    assert line is not None and line.startswith("torch.compile crashed the process that compiled this model (SIGABRT")
    assert "\n" not in line


def test_a_model_another_process_cannot_load_is_compiled_unprobed() -> None:
    class Local(nn.Module):  # a class pickle cannot find by name
        def forward(self, x):
            return x

    assert backends.compile_crash(Local(), torch.randn(1, 3, 8, 8), threads=1) is None
