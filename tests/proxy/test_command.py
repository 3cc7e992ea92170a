"""`nasbench train` through click's CliRunner: files written, synthetic labelled, bad input."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from nasbench.errors import UserError
from nasbench.proxy.command import curve_svg, nice_ticks, train

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()
CIFAR_SMALL = SHARED_DATA / "cifar10-small"

FACTORY = """
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, {classes}))
"""


def factory(tmp_path: Path, classes: int) -> str:
    path = tmp_path / f"tiny{classes}.py"
    path.write_text(FACTORY.format(classes=classes))
    return f"{path}:tiny"


def invoke(args: list[str]):
    return CliRunner().invoke(train, args, catch_exceptions=True)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.skipif(not CIFAR_SMALL.is_dir(), reason=f"real test images not found at {CIFAR_SMALL}")
def test_command_writes_csv_svg_and_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke([factory(tmp_path, 10), "--data", str(CIFAR_SMALL), "--steps", "6", "--batch", "32",
                     "--evals", "3", "--device", "cpu", "--ema", "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = read_csv(out / "curve.csv")
    assert [r["step"] for r in rows] == ["2", "4", "6"]
    assert set(rows[0]) >= {"step", "train_loss", "val_loss", "val_top1_pct", "lr", "elapsed_s", "synthetic"}
    assert all(r["synthetic"] == "false" and r["data_kind"] == "imagefolder" for r in rows)
    svg = ET.parse(out / "curve.svg").getroot()
    assert svg.tag.endswith("svg") and len(list(svg.iter("{http://www.w3.org/2000/svg}polyline"))) == 3
    saved = json.loads((out / "result.json").read_text())
    assert saved["steps_done"] == 6 and saved["ema"] == 0.999 and len(saved["data"]["mean"]) == 3
    assert "top-1" in result.output and "img/s" in result.output and f"wrote {out / 'curve.svg'}" in result.output
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_synthetic_run_is_labelled_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = invoke([factory(tmp_path, 20), "--steps", "2", "--batch", "16", "--evals", "1", "--device", "cpu",
                     "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "SYNTHETIC" in result.output
    assert all(r["synthetic"] == "true" and r["data_kind"] == "synthetic" for r in read_csv(out / "curve.csv"))
    assert "SYNTHETIC" in (out / "curve.svg").read_text()
    assert json.loads((out / "result.json").read_text())["data"]["synthetic"] is True


@pytest.mark.skipif(not CIFAR_SMALL.is_dir(), reason=f"real test images not found at {CIFAR_SMALL}")
def test_zoo_preset_builds_with_the_data_class_count(tmp_path: Path) -> None:
    from nasbench.zoo import all_presets

    if "mobilevit_xxs" not in all_presets():
        pytest.skip("zoo preset mobilevit_xxs not available")
    result = invoke(["mobilevit_xxs", "--data", str(CIFAR_SMALL), "--steps", "2", "--batch", "8", "--evals", "1",
                     "--device", "cpu", "--out", str(tmp_path / "mv")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((tmp_path / "mv" / "result.json").read_text())["model"] == "mobilevit_xxs"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--batch", "100000"], "is larger than the training set"),
        (["--data", "/no/such/dir"], "data directory not found"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "never"
    result = invoke([factory(tmp_path, 20), "--device", "cpu", "--out", str(out), *extra])
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists()


def test_nice_ticks_cover_the_range() -> None:
    assert nice_ticks(0, 300) == [0, 100, 200, 300] or nice_ticks(0, 300)[-1] >= 300
    ticks = nice_ticks(2.21, 3.07)
    assert ticks[0] <= 2.21 and ticks[-1] >= 3.07 and len(ticks) <= 7
    assert nice_ticks(5.0, 5.0)[0] < 5.0 < nice_ticks(5.0, 5.0)[-1]


def test_svg_survives_a_diverged_curve() -> None:
    from nasbench.proxy.data import DataInfo
    from nasbench.proxy.train import CurvePoint, ProxyResult

    info = DataInfo("x", "imagefolder", False, ("a", "b"), 2, 2, 8, (0.5,) * 3, (0.2,) * 3, "folders")
    curve = (CurvePoint(1, 2.0, 1.0, 50.0, 0.1, 0.1), CurvePoint(2, float("nan"), float("inf"), 50.0, 0.1, 0.2))
    fields = dict(top1=50.0, top5=100.0, val_loss=float("inf"), curve=curve, images_per_s=1.0, wall_s=1.0,
                  train_s=1.0, load_s=0.0, peak_mem_bytes=0, peak_mem_kind="-", data=info, seed=0, device="cpu",
                  steps=2, steps_done=2, batch=1, imgsz=8, lr=0.1, amp="off", ema=None, mixup=0.0, cutmix=0.0,
                  label_smoothing=0.0, augment="-", stopped_early=False, diverged=True, params=1, threads=1,
                  torch_version="-")
    ET.fromstring(curve_svg(ProxyResult(**fields), "m <&> n"))  # valid XML, NaN points left out
