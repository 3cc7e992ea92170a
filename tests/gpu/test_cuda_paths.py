"""Every CUDA path of nasbench, on a real GPU. Marked ``gpu``: without a CUDA device torch can
see they skip with that reason (tests/conftest.py); `benchmarks/gpu_suite.sh` runs them."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from nasbench import zoo
from nasbench.cli import main
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.latency import TimingPlan, time_models
from tests.helpers import TINY_SPACE, randomize_bn

pytestmark = pytest.mark.gpu
PLAN = TimingPlan(warmup=20, runs=100, rounds=5, time_limit_s=60.0)


def deploy(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return fuse_for_deploy(randomize_bn(zoo.create(name))).eval()


def wall_clock_median_ms(model: torch.nn.Module, imgsz: int, runs: int = 100) -> float:
    """A synchronised perf_counter loop: what CUDA-event timing must agree with."""
    x = torch.randn(1, 3, imgsz, imgsz, device="cuda")
    with torch.inference_mode():
        for _ in range(20):
            model(x)
        torch.cuda.synchronize()
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            torch.cuda.synchronize()
            walls.append(time.perf_counter() - start)
    return 1e3 * sorted(walls)[runs // 2]


def test_event_timing_agrees_with_a_synchronised_wall_clock_loop() -> None:
    model = deploy("mobilevit_xs")
    timing = time_models({"m": model}, 256, device="cuda", plan=PLAN)["m"]
    wall_ms = wall_clock_median_ms(model, 256)  # the model is on the GPU now
    assert timing.device == "cuda" and timing.cuda_version
    # events exclude the host's launch of the first kernel; 15% covers that on a fast GPU
    assert abs(timing.median_ms - wall_ms) / wall_ms < 0.15, (timing.median_ms, wall_ms)


def test_peak_memory_is_measured_and_grows_with_the_batch() -> None:
    small = time_models({"m": deploy("efficientvit_m0")}, 224, batch=1, device="cuda", plan=PLAN)["m"]
    large = time_models({"m": deploy("efficientvit_m0")}, 224, batch=16, device="cuda", plan=PLAN)["m"]
    assert small.peak_mem_bytes and large.peak_mem_bytes > small.peak_mem_bytes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["mobilevit_xxs", "efficientvit_m0", "ghostnetv3_050", "mobileformer_26m"])
def test_half_precision_logits_are_close_to_fp32(name: str, dtype: torch.dtype) -> None:
    model = deploy(name).cuda()
    x = torch.randn(2, 3, 224, 224, device="cuda")
    with torch.inference_mode():
        ref = model(x).float()
        half = model.to(dtype)(x.to(dtype)).float()
    gap = (half - ref).abs().max() / ref.abs().max()
    assert gap < (0.02 if dtype == torch.float16 else 0.05), float(gap)


def test_channels_last_gives_the_same_logits() -> None:
    model = deploy("ghostnetv3_100").cuda()
    x = torch.randn(2, 3, 224, 224, device="cuda")
    with torch.inference_mode():
        ref = model(x)
        last = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(last, ref, atol=1e-3, rtol=1e-3)


def test_compare_on_cuda_with_the_detector_at_640(tmp_path) -> None:
    csv = tmp_path / "c.csv"
    res = CliRunner().invoke(main, ["compare", "efficientvit_m0", "--device", "cuda", "--detector", "--runs", "20",
                                    "--csv", str(csv), "--out", str(tmp_path / "rep")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(csv).set_index("name")
    assert (rows["device"] == "cuda").all() and rows.loc["rtdetr_l", "det_params_train_form"] == 32_970_476
    assert rows.loc["rtdetr_l", "det_imgsz"] == 640 and rows.loc["rtdetr_l", "det_latency_ms"] > 0
    assert (rows["peak_mem_mb"] > 0).all()


def test_proxy_training_with_amp_on_the_gpu() -> None:
    from nasbench.proxy.data import make_synthetic
    from nasbench.proxy.train import EvalPlan, Recipe, train_proxy

    data = make_synthetic(seed=0, imgsz=32, n_train=512, n_val=256)
    result = train_proxy(zoo.create("mobilevit_xxs", num_classes=data.num_classes), data,
                         Recipe(steps=30, batch=64, amp="on"), EvalPlan(evals=2), device="cuda")
    assert result.device.startswith("cuda") and result.amp != "off"
    assert 0.0 <= result.top1 <= 100.0 and all(p.train_loss == p.train_loss for p in result.curve)  # no NaN


def test_a_cost_only_search_times_its_trials_on_cuda(tmp_path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    res = CliRunner().invoke(main, ["search", "--space", str(space), "--budget", "100ms", "--no-train", "--trials", "3",
                                    "--no-presets", "--device", "cuda", "--storage", f"sqlite:///{tmp_path}/s.db",
                                    "--out", str(tmp_path / "rep")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    trials = pd.read_csv(tmp_path / "rep" / "trials.csv")
    assert len(trials) == 3 and (trials["latency_ms"] > 0).all() and (trials["device"] == "cuda").all()


# ----------------------------------------------------------------------------- the latency issue on CUDA
def test_cuda_graph_replay_is_timed_beside_eager() -> None:
    timing = time_models({"m": deploy("mobilevit_xxs")}, 256, device="cuda", plan=PLAN, cuda_graph=True)["m"]
    assert timing.graph_error is None and timing.graph_median_ms is not None
    # replay skips the launches, so it is not slower than eager (10% for event jitter)
    assert 0 < timing.graph_median_ms <= 1.1 * timing.median_ms, (timing.graph_median_ms, timing.median_ms)


class ReadsOnTheHost(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.mean().item() > 0)  # a host read: not capturable


def test_a_forward_that_cannot_be_captured_keeps_its_eager_figure() -> None:
    out = time_models({"bad": ReadsOnTheHost(), "good": deploy("efficientvit_m0")}, 224, device="cuda", plan=PLAN,
                      cuda_graph=True)
    assert out["bad"].graph_error.startswith("cannot be captured in a CUDA graph") and out["bad"].median_ms > 0
    assert out["good"].graph_median_ms is not None


def test_compare_cuda_graph_column_and_roofline(tmp_path) -> None:
    csv = tmp_path / "c.csv"
    res = CliRunner().invoke(main, ["compare", "mobilevit_xxs", "efficientvit_m0", "--device", "cuda", "--cuda-graph",
                                    "--runs", "50", "--csv", str(csv), "--out", str(tmp_path / "rep")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(csv)
    assert (rows["latency_graph_ms"] > 0).all() and (rows["latency_vs_bound"] >= 1).all()


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_no_preset_runs_below_its_bound_on_the_gpu(dtype: str) -> None:
    from nasbench.metrics.cost import count_cost
    from nasbench.metrics.latency import DTYPES
    from nasbench.metrics.roofline import bound_of, device_peaks

    peaks = device_peaks(torch.device("cuda"), dtype)
    for name in ("mobilevit_xxs", "efficientvit_m0", "ghostnetv3_100", "volo_d1", "hgnetv2_l"):
        model = deploy(name)
        size = zoo.resolve(name).native_imgsz
        cost = count_cost(model, size)
        timing = time_models({name: model}, size, device="cuda", dtype=dtype, plan=PLAN)[name]
        bound = bound_of(cost, 1, DTYPES[dtype].itemsize, peaks)
        assert timing.median_ms >= bound.ms, (name, timing.median_ms, bound)


@pytest.mark.parametrize("backend", ["compile", "onnxruntime"])
def test_backends_on_cuda_match_eager(backend: str) -> None:
    import importlib.util

    if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime(-gpu) is not installed on this machine")
    out = time_models({"m": deploy("efficientvit_m0")}, 224, device="cuda", plan=PLAN, backend=backend)["m"]
    if out.error and "has no CUDAExecutionProvider" in out.error:
        pytest.skip(out.error)
    assert out.error is None and out.median_ms > 0 and out.backend_max_abs_diff <= 1e-2
