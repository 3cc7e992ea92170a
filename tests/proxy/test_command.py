"""`nasbench train` through click's CliRunner: files written, synthetic labelled, bad input."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from nasbench.errors import UserError
from nasbench.proxy.command import curve_csv, curve_svg, train
from nasbench.proxy.data import DataInfo
from nasbench.proxy.train import CurvePoint, ProxyResult

SVG = "{http://www.w3.org/2000/svg}"
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
    plots = {p.get("id"): p for p in ET.parse(out / "curve.svg").getroot().iter(f"{SVG}svg")}
    # 3 points and 1 line per series: train + val loss in one panel, val top-1 in the other
    assert int(plots["loss"].get("data-marks")) == 2 * 4 and int(plots["top1"].get("data-marks")) == 4
    saved = json.loads((out / "result.json").read_text())
    assert saved["steps_done"] == 6 and saved["ema"] == 0.999 and len(saved["data"]["mean"]) == 3
    assert "top-1" in result.output and "img/s" in result.output and f"wrote {out / 'curve.svg'}" in result.output
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def test_synthetic_run_is_labelled_everywhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no --out: the default folder, named as compare names its own
    result = invoke([factory(tmp_path, 20), "--steps", "2", "--batch", "16", "--evals", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    [out] = (tmp_path / "reports").iterdir()
    assert re.fullmatch(r"train-\d{8}-\d{6}", out.name)
    assert sorted(p.name for p in out.iterdir()) == ["curve.csv", "curve.svg", "result.json"]
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


def proxy_result(curve: tuple[CurvePoint, ...], synthetic: bool = False) -> ProxyResult:
    """A finished run with the given curve (every other figure a placeholder)."""
    info = DataInfo("x", "synthetic" if synthetic else "imagefolder", synthetic, ("a", "b"), 2, 2, 8, (0.5,) * 3,
                    (0.2,) * 3, "folders")
    return ProxyResult(top1=50.0, top5=100.0, val_loss=1.0, curve=curve, images_per_s=1.0, wall_s=1.0, train_s=1.0,
                       load_s=0.0, peak_mem_bytes=0, peak_mem_kind="-", data=info, seed=0, device="cpu", steps=2,
                       steps_done=2, batch=1, imgsz=8, lr=0.1, amp="off", ema=None, mixup=0.0, cutmix=0.0,
                       label_smoothing=0.0, augment="-", stopped_early=False, diverged=False, params=1, threads=1,
                       torch_version="-")


# step, train loss, val loss, val top-1 (%), lr, elapsed s, val images
KNOWN = (CurvePoint(2, 2.0, 2.2, 10.0, 0.1, 0.5, 2), CurvePoint(4, 1.0, 1.5, 40.0, 0.05, 1.0, 2),
         CurvePoint(6, 0.5, 1.2, 70.0, 0.01, 1.5, 2))


def plot_points(svg: str, plot_id: str) -> tuple[list[tuple[float, float]], list[str]]:
    """(cx, cy) of every marker of one panel, and the d of each of its lines."""
    plot = next(p for p in ET.fromstring(svg).iter(f"{SVG}svg") if p.get("id") == plot_id)
    points = [(float(c.get("cx")), float(c.get("cy"))) for c in plot.iter(f"{SVG}circle")
              if c.find(f"{SVG}title") is not None]  # a point has hover text, a legend key has none
    lines = [p.get("d") for p in plot.iter(f"{SVG}path") if p.get("fill") == "none"]
    return points, lines


def test_svg_draws_each_curve_as_a_line_through_its_points() -> None:
    svg = curve_svg(proxy_result(KNOWN), "tiny")
    points, lines = plot_points(svg, "top1")
    # the step axis spans 0..6 over the 670 px plot frame starting at x=70, in both panels
    assert [x for x, _ in points] == pytest.approx([70 + 670 * s / 6 for s in (2, 4, 6)], abs=0.05)
    assert points[0][1] > points[1][1] > points[2][1]  # top-1 rises: the marker climbs (SVG y grows down)
    assert lines == ["M{:.1f} {:.1f}L{:.1f} {:.1f}L{:.1f} {:.1f}".format(*points[0], *points[1], *points[2])]
    loss_points, loss_lines = plot_points(svg, "loss")
    assert len(loss_points) == 6 and len(loss_lines) == 2  # train and val loss
    assert [x for x, _ in loss_points[:3]] == [x for x, _ in points]  # the two panels' step axes line up
    assert "step 4: val top-1 40" in svg  # each point's hover text


def test_svg_survives_a_diverged_curve() -> None:
    curve = (CurvePoint(1, 2.0, 1.0, 50.0, 0.1, 0.1), CurvePoint(2, float("nan"), float("inf"), 50.0, 0.1, 0.2))
    svg = curve_svg(proxy_result(curve, synthetic=True), "m <&> n")
    points, lines = plot_points(svg, "loss")
    assert len(points) == 2 and lines == []  # one finite point per loss series: no line, NaN and inf left out
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]  # valid XML, the name shown as given
    assert texts[0] == "m <&> n: proxy training" and texts[1].startswith("data: SYNTHETIC")
    assert texts[3] == "SYNTHETIC DATA: the built-in generated task, not real images"


def test_csv_has_one_row_per_evaluation() -> None:
    diverged = replace(KNOWN[2], train_loss=float("nan"), val_loss=float("inf"), val_top1=100 / 3)
    rows = curve_csv(proxy_result((KNOWN[0], diverged))).splitlines()
    assert rows == [
        "step,train_loss,val_loss,val_top1_pct,val_images,lr,elapsed_s,data_kind,synthetic",
        "2,2.0,2.2,10.0,2,0.1,0.5,imagefolder,false",
        "6,,inf,33.33,2,0.01,1.5,imagefolder,false",
    ]
