"""The one --device resolver: what timing and training accept, and their one-line errors."""

from __future__ import annotations

import pytest
import torch

from nasbench.device import resolve_device
from nasbench.errors import UserError


@pytest.fixture
def one_gpu(monkeypatch):
    """torch as on a machine with one CUDA GPU (nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def message(spec, **kwargs) -> str:
    with pytest.raises(UserError) as exc:
        resolve_device(spec, **kwargs)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_cpu_and_auto_without_a_gpu(no_gpu) -> None:
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None, allow_mps=True)


def test_cuda_gets_its_index_so_every_caller_names_the_same_gpu(one_gpu) -> None:
    assert resolve_device("auto") == resolve_device("cuda") == resolve_device(torch.device("cuda"))
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert message("cuda:3") == "--device cuda:3: only 1 CUDA device(s) present"


def test_cuda_without_a_gpu_says_so(no_gpu) -> None:
    text = message("cuda")
    assert text.startswith("--device cuda requested but CUDA is not available on this machine (torch ")
    assert "sees no CUDA GPU" in text and text.endswith("; use --device cpu or auto")


def test_unknown_devices_list_what_the_caller_accepts() -> None:
    assert message("tpu") == "unknown device 'tpu' (use auto, cpu, cuda or cuda:N)"  # docs/bad-input.md
    assert message("tpu", allow_mps=True) == "unknown device 'tpu' (use auto, cpu, cuda, cuda:N or mps)"
    assert message("meta") == "unsupported device 'meta' (use auto, cpu, cuda or cuda:N)"


def test_mps_only_where_the_caller_synchronises_it(monkeypatch, no_gpu) -> None:
    assert message("mps") == "unsupported device 'mps' (use auto, cpu, cuda or cuda:N)"
    assert "MPS is not available" in message("mps", allow_mps=True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps", allow_mps=True) == torch.device("mps")
    assert resolve_device("auto", allow_mps=True) == torch.device("mps")
    assert resolve_device("auto") == torch.device("cpu")  # timing never picks MPS by itself


def test_timing_refuses_mps_and_training_accepts_it(no_gpu) -> None:
    from nasbench.metrics.latency import time_models
    from nasbench.proxy.train import Recipe, train_proxy

    with pytest.raises(UserError, match=r"^unsupported device 'mps'"):
        time_models({}, device="mps")
    with pytest.raises(UserError, match="MPS is not available"):  # accepted, then found missing here
        train_proxy(torch.nn.Linear(1, 1), None, Recipe(steps=1), device="mps")
