"""Shared test settings: small thread count, the --runslow switch, data locations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow on a 2-core CPU: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch here)")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def measured_peaks(tmp_path_factory) -> Path:
    """This machine's roofline peaks at 1 and 2 threads, measured once per test session (the
    microbenchmarks take seconds): every test's cache starts with them."""
    import os

    from nasbench.metrics.latency import torch_settings
    from nasbench.metrics.roofline import PEAKS_FILE, device_peaks

    folder = tmp_path_factory.mktemp("nasbench-peaks")
    old = os.environ.get("NASBENCH_CACHE_DIR")
    os.environ["NASBENCH_CACHE_DIR"] = str(folder)
    try:
        for threads in (1, 2, torch.get_num_threads()):
            with torch_settings(threads):
                device_peaks(torch.device("cpu"), "fp32")
    finally:
        if old is None:
            del os.environ["NASBENCH_CACHE_DIR"]
        else:
            os.environ["NASBENCH_CACHE_DIR"] = old
    return folder / PEAKS_FILE


@pytest.fixture(autouse=True)
def measurement_cache(tmp_path_factory, monkeypatch, measured_peaks: Path) -> Path:
    """Every test gets its own cross-study measurement cache, never the user's (the session's
    measured roofline peaks in it)."""
    import shutil

    folder = tmp_path_factory.mktemp("nasbench-cache")
    shutil.copy(measured_peaks, folder / measured_peaks.name)
    monkeypatch.setenv("NASBENCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def accept_unstable_timing(monkeypatch) -> None:
    """Searches in tests judge what they time even when other processes load the CPU (a busy
    laptop or CI runner would otherwise fail trials the test is not about); the tests of the
    re-timing itself pass --unstable-timing fail."""
    monkeypatch.setenv("NASBENCH_UNSTABLE_TIMING", "accept")
