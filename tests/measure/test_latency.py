"""Latency timer: statistics, alternation, time limit, recorded context."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from nasbench.metrics.latency import TimingPlan, _percentile, time_models


class Sleeper(nn.Module):
    """A model whose latency we know: it sleeps ``ms`` milliseconds."""

    def __init__(self, ms: float) -> None:
        super().__init__()
        self.ms = ms
        self.calls = 0
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self.calls += 1
        time.sleep(self.ms / 1e3)
        return x


def test_percentile_interpolates() -> None:
    assert _percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert _percentile([0.0, 10.0], 0.1) == pytest.approx(1.0)
    assert _percentile([7.0], 0.9) == 7.0


def test_known_latency_and_context() -> None:
    plan = TimingPlan(warmup=1, runs=6, rounds=3, time_limit_s=30, isolate=False)  # calls counted here
    models = {"fast": Sleeper(2), "slow": Sleeper(8)}
    out = time_models(models, 8, device="cpu", threads=1, plan=plan)
    assert out["fast"].runs == out["slow"].runs == 6
    assert 2 <= out["fast"].median_ms < 8 <= out["slow"].median_ms < 30
    assert out["fast"].p10_ms <= out["fast"].median_ms <= out["fast"].p90_ms
    t = out["slow"]
    assert (t.device, t.dtype, t.threads, t.batch, t.input_shape) == ("cpu", "fp32", 1, 1, (1, 3, 8, 8))
    assert t.torch_version == torch.__version__ and t.cuda_version is None and t.peak_mem_bytes is None
    assert "alternating 3 rounds over 2 model(s)" in t.what
    # warm-up + one planning probe + 6 timed runs
    assert models["fast"].calls == 1 + 1 + 6


def test_time_limit_cuts_runs_and_says_so() -> None:
    plan = TimingPlan(warmup=0, runs=100, rounds=5, time_limit_s=0.2, min_runs=3)
    out = time_models({"slow": Sleeper(20)}, 8, device="cpu", plan=plan)["slow"]
    assert out.time_limited and 3 <= out.runs < 100


def test_alternating_rounds_interleave() -> None:
    order: list[str] = []

    class Tagged(nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, x):
            order.append(self.tag)
            return x

    time_models({"a": Tagged("a"), "b": Tagged("b")}, 4, plan=TimingPlan(warmup=0, runs=4, rounds=2))
    timed = "".join(order[2:])  # after the two planning probes
    assert timed == "aabbaabb"


def test_timing_sets_threads_for_itself_only() -> None:
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    timing = time_models({"m": torch.nn.Conv2d(3, 4, 3)}, 16, threads=want,
                         plan=TimingPlan(warmup=1, runs=3, rounds=1))["m"]
    assert timing.threads == want  # recorded as used ...
    assert torch.get_num_threads() == before  # ... and restored afterwards


# ----------------------------------------------------------------------------- history, stability
def test_the_heap_is_kept_so_no_forward_page_faults_whatever_ran_before() -> None:
    """A conv net at 128 px allocates MBs of feature maps per forward: with glibc's default a
    fresh process page-faults on them every forward (thousands of faults); kept, none."""
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    scratch = [torch.empty(2**22) for _ in range(8)]  # history: 128 MiB allocated and freed first
    del scratch
    timing = time_models({"m": net}, 128, threads=1, plan=TimingPlan(warmup=2, runs=6, rounds=2))["m"]
    if not timing.allocator.startswith("glibc"):
        pytest.skip(f"no glibc here ({timing.allocator})")
    assert timing.faults_per_run is not None and timing.faults_per_run <= 1.0


def test_stability_rule_by_hand() -> None:
    rule = TimingPlan().stability
    assert rule.reason(0.10, 20.0, 0.05) == ""
    assert rule.reason(0.40, 20.0, 0.05) == "spread (p90 - p10) / median 40%"
    assert rule.reason(0.40, 0.5, None) == ""  # 0.2 ms of spread on a 0.5 ms model: scheduler jitter
    assert rule.reason(0.10, 20.0, 1.0) == "other processes kept 1.00 CPU cores busy"


def test_a_busy_process_during_timing_is_seen_and_flagged() -> None:
    """Another process spinning on a core while a model is timed: its load is measured and the
    timing marked unstable, whatever the spread."""
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        timing = time_models({"m": Sleeper(5)}, 8, threads=1, plan=TimingPlan(warmup=1, runs=100, rounds=2))["m"]
    finally:
        busy.kill()
        busy.wait()
    if timing.other_load_cores is None:
        pytest.skip("no /proc/stat on this system")
    assert timing.other_load_cores > 0.5  # the spinning process: about one core
    assert timing.unstable and "other processes kept" in timing.unstable_reason


def test_garbage_collection_is_paused_while_timing_and_restored() -> None:
    import gc

    from nasbench.metrics.latency import python_gc_paused

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(gc.isenabled())
            return x

    assert gc.isenabled()
    time_models({"m": Probe()}, 4, plan=TimingPlan(warmup=1, runs=3, rounds=1))
    assert seen and not any(seen) and gc.isenabled()
    gc.disable()
    try:
        with python_gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own setting is kept
    finally:
        gc.enable()
