"""Each model timed in its own clean child process (metrics/isolation.py): the figures come
from the child, the parent's objects are untouched, and a model the child cannot rebuild is
timed here with the reason in its row."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from nasbench.metrics.latency import TimingPlan, time_models

CALLS = {"n": 0}  # forwards run in this process


class Counted(nn.Module):
    """Sleeps ``ms`` and counts its forwards in this process's CALLS."""

    def __init__(self, ms: float) -> None:
        super().__init__()
        self.ms = ms
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        CALLS["n"] += 1
        time.sleep(self.ms / 1e3)
        return x


def test_an_isolated_model_runs_in_its_child_not_here() -> None:
    CALLS["n"] = 0
    plan = TimingPlan(warmup=2, runs=6, rounds=2)
    timing = time_models({"m": Counted(4)}, 8, device="cpu", threads=1, plan=plan)["m"]
    assert timing.process == "isolated" and "each in its own clean process" in timing.what
    assert timing.runs == 6 and 4 <= timing.median_ms < 20  # the child's sleeps, timed there
    assert CALLS["n"] == 0  # not one forward ran in this process
    shared = time_models({"m": Counted(4)}, 8, device="cpu", threads=1, plan=TimingPlan(warmup=2, runs=6, rounds=2,
                                                                                         isolate=False))["m"]
    assert shared.process == "shared" and CALLS["n"] == 2 + 1 + 6  # warm-up, probe, timed runs


def test_isolated_and_shared_figures_agree_on_a_known_latency() -> None:
    plan = TimingPlan(warmup=1, runs=8, rounds=2)
    isolated = time_models({"m": Counted(10)}, 8, threads=1, plan=plan)["m"]
    shared = time_models({"m": Counted(10)}, 8, threads=1, plan=TimingPlan(warmup=1, runs=8, rounds=2,
                                                                            isolate=False))["m"]
    assert abs(isolated.median_ms - shared.median_ms) < 2.0  # both ~10 ms of sleep


def test_a_model_the_child_cannot_rebuild_is_timed_here_and_says_why() -> None:
    class Local(nn.Module):  # a class defined in a function: it cannot be pickled by reference
        def forward(self, x):
            return x * 2

    timings = time_models({"local": Local(), "conv": nn.Conv2d(3, 4, 3)}, 16, threads=1,
                          plan=TimingPlan(warmup=1, runs=4, rounds=2))
    assert timings["local"].process.startswith("shared (not picklable: ") and timings["local"].runs == 4
    assert timings["conv"].process == "isolated" and timings["conv"].runs == 4


def test_isolation_is_cpu_eager_only() -> None:
    """Another runtime keeps its own process (its sessions and arenas are built here)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install -e '.[test]')")
    timing = time_models({"m": nn.Conv2d(3, 4, 3)}, 16, threads=1, backend="onnxruntime",
                         plan=TimingPlan(warmup=1, runs=3, rounds=1))["m"]
    assert timing.error is None and timing.process == "shared" and "own clean process" not in timing.what
