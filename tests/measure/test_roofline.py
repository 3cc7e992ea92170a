"""Roofline bound: bytes counted by hand, the bound's arithmetic, the peaks cache, and no
preset ever measured below its bound."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics import roofline
from nasbench.metrics.cost import Cost, count_cost
from nasbench.metrics.latency import TimingPlan, time_models, torch_settings
from nasbench.metrics.roofline import Peaks, bound_of, device_peaks, roofline_columns


def peaks(flops: float = 100e9, bandwidth: float = 10e9) -> Peaks:
    return Peaks("test cpu", "fp32", 1, torch.__version__, flops, bandwidth, "now", "by hand")


def test_bytes_moved_of_a_conv_by_hand() -> None:
    cost = count_cost(nn.Conv2d(3, 8, 3, padding=1, bias=False), 16)
    assert cost.weight_bytes == 8 * 3 * 3 * 3 * 4
    assert cost.activation_bytes == (3 * 16 * 16 + 8 * 16 * 16) * 4  # input read, output written


def test_a_transposed_weight_is_still_a_weight() -> None:
    """F.linear hands addmm a transposed view of the weight: it must count as weight bytes."""
    net = nn.Sequential(nn.Conv2d(3, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 20))
    cost = count_cost(net, 4)
    assert cost.weight_bytes == (3 * 10 + 10 + 10 * 20 + 20) * 4


def test_bound_arithmetic_by_hand() -> None:
    cost = Cost(params=0, params_trainable=0, macs=10**9, input_shape=(1, 3, 8, 8), counter="x", count_s=0.0,
                weight_bytes=4 * 10**6, activation_bytes=10**7)
    bound = bound_of(cost, batch=2, dtype_bytes=4, peaks=peaks())
    assert bound.flops == 4 * 10**9 and bound.compute_ms == pytest.approx(40.0)  # 4 GFLOP at 100 GFLOP/s
    assert bound.bytes_moved == 24 * 10**6 and bound.memory_ms == pytest.approx(2.4)  # 24 MB at 10 GB/s
    assert bound.ms == pytest.approx(40.0) and bound.limited_by == "compute"
    half = bound_of(cost, batch=2, dtype_bytes=2, peaks=peaks(flops=1e15))
    assert half.bytes_moved == 12 * 10**6 and half.limited_by == "memory"
    cols = roofline_columns(cost, 2, 4, peaks(), latency_ms=80.0)
    assert cols["latency_vs_bound"] == pytest.approx(2.0) and cols["bound_by"] == "compute"


def test_peaks_are_measured_once_then_read_from_the_cache(monkeypatch, measurement_cache) -> None:
    calls = []

    def fake_measure(device, dtype, name, plan=None):
        calls.append(dtype)
        return peaks(flops=1e9 * len(calls))

    monkeypatch.setattr(roofline, "measure_peaks", fake_measure)
    (measurement_cache / roofline.PEAKS_FILE).unlink(missing_ok=True)  # the session's peaks: not this test's
    cpu = torch.device("cpu")
    first = device_peaks(cpu, "fp32")
    assert device_peaks(cpu, "fp32") == first and calls == ["fp32"]
    assert device_peaks(cpu, "fp32", refresh=True).flops_per_s == 2e9 and len(calls) == 2
    (measurement_cache / roofline.PEAKS_FILE).write_text("{not json")  # damaged: measured again, no error
    assert device_peaks(cpu, "fp32").flops_per_s == 3e9
    assert json.loads((measurement_cache / roofline.PEAKS_FILE).read_text())["format"] == roofline.FORMAT


def test_measured_peaks_are_plausible() -> None:
    with torch_settings(1):
        got = roofline.measure_peaks(torch.device("cpu"), "fp32", "cpu",
                                     roofline.PeakPlan(matmul_n=512, conv_shapes=((1, 64, 16, 3),), copy_mib=(1.0,),
                                                       seconds=0.1))
    assert 1e8 < got.flops_per_s < 1e13 and 1e8 < got.bytes_per_s < 1e13 and got.threads == 1


SMALLEST = sorted({fam.name: name for name, (fam, _cfg) in reversed(list(zoo.all_presets().items()))}.values())


@pytest.mark.parametrize("name", SMALLEST)
def test_no_preset_runs_below_its_bound(name: str) -> None:
    """The first preset of every family, timed for real against this machine's measured roofs:
    a latency below the bound would be a bug in the bound."""
    spec = zoo.resolve(name)
    model = fuse_for_deploy(spec.build()).eval()
    cost = count_cost(model, spec.native_imgsz)
    timing = time_models({name: model}, spec.native_imgsz, threads=2, plan=TimingPlan(warmup=2, runs=5, rounds=1))
    with torch_settings(2):
        measured = device_peaks(torch.device("cpu"), "fp32")
    bound = bound_of(cost, 1, 4, measured)
    assert timing[name].median_ms >= bound.ms > 0
