"""The built wheel works on its own: installed into a fresh venv and run from an empty
directory, it lists the presets and searches every shipped space (the editable install
the other tests use would hide a file that is read from the source tree)."""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "nasbench", "spaces")


def _setuptools_for_offline_build() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68  # pyproject.toml's build requirement


def build_wheel(out: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (REPO / name).is_dir() else {}))
    # with setuptools >= 68 at hand, build offline; else pip fetches it into an isolated build env
    no_isolation = ["--no-build-isolation"] if _setuptools_for_offline_build() else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *no_isolation, "-w", str(out / "dist"),
                    str(src)], check=True, capture_output=True, timeout=300)
    return next((out / "dist").glob("nasbench-*.whl"))


def fresh_venv(root: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; its dependencies (torch ...) come from this interpreter's
    site-packages through a .pth line, which adds them without running their .pth files (so
    an editable install of nasbench there stays invisible)."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    venv_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                               capture_output=True, text=True).stdout.strip()
    Path(venv_site, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return root / "bin" / "nasbench"


def test_the_wheel_searches_every_space_from_an_empty_directory(tmp_path: Path) -> None:
    nasbench = fresh_venv(tmp_path / "venv", build_wheel(tmp_path / "build"))
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> str:
        proc = subprocess.run([str(nasbench), *args], cwd=work, capture_output=True, text=True, timeout=600,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    python = tmp_path / "venv" / "bin" / "python"
    imported = subprocess.run([str(python), "-c", "import nasbench; print(nasbench.__file__)"],
                              capture_output=True, text=True, check=True, cwd=work).stdout
    assert str(tmp_path / "venv") in imported  # the wheel's copy, not the checkout
    assert "mobilevit_s" in run("models", "--no-cost")
    one = run("search", "--space", "mobilevit", "--budget", "30ms", "--no-train", "--trials", "2", "--no-presets",
              "--device", "cpu", "--threads", "1")
    every = run("search", "--space", "all", "--budget", "30ms", "--no-train", "--trials", "2", "--no-presets",
                "--device", "cpu", "--threads", "1")
    assert "2 trial(s) this run" in one and "2 trial(s) this run" in every
    written = [Path(p) for text in (one, every) for line in text.splitlines() if line.startswith("wrote ")
               for p in re.split(r",\s*", line[len("wrote "):])]
    assert len(written) == 6 and all(p.is_absolute() and p.is_file() for p in written)
    assert all(work in p.parents for p in written)  # everything under the directory it ran in
    assert sorted(p.name for p in work.iterdir()) == ["reports", "studies"]
