"""`nasbench compare --detector` and `nasbench baseline` end to end (small sizes, tiny timing plans)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from nasbench.cli import main

torch.set_num_threads(1)

# Backbone columns at 64 px, detector columns at 256 px, one timed run: seconds, not minutes.
FAST = ["--device", "cpu", "--runs", "1", "--warmup", "0", "--imgsz", "64", "--det-imgsz", "256"]
DET_COLUMNS = {"det_imgsz", "det_strides", "det_params", "det_params_train_form", "det_macs", "det_flops",
               "det_macs_thop_x2", "det_latency_ms", "det_latency_p10_ms", "det_latency_p90_ms",
               "det_params_delta_pct", "det_macs_delta_pct", "det_latency_delta_pct"}


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_compare_detector_adds_columns_and_reference_row(tmp_path) -> None:
    out = tmp_path / "rep"
    res = run(["compare", "efficientvit_m0", *FAST, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "det_params" not in pd.read_csv(out / "compare.csv").columns  # opt-in only

    res = run(["compare", "efficientvit_m0", *FAST, "--detector", "--out", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "compare.csv")
    assert DET_COLUMNS <= set(frame.columns)
    assert list(frame["name"]) == ["efficientvit_m0", "rtdetr_l"]
    ref = frame.set_index("name").loc["rtdetr_l"]
    assert ref["family"] == "rtdetr" and ref["source"] == "baseline"
    assert ref["det_params_train_form"] == 32_970_476
    assert ref["det_params_delta_pct"] == ref["det_macs_delta_pct"] == ref["det_latency_delta_pct"] == 0.0
    ev = frame.set_index("name").loc["efficientvit_m0"]
    assert ev["det_strides"] == "16/32/64" and ev["det_imgsz"] == 256
    assert ev["det_params_delta_pct"] == pytest.approx(100 * (ev["det_params"] / ref["det_params"] - 1))
    assert "RT-DETR on each backbone at 256 px" in res.output and "Δ latency %" in res.output
    assert "detector: RT-DETR (rtdetr-l neck + decoder, 80 classes) at 256 px" in res.output
    html = (out / "index.html").read_text()
    assert "det params M" in html and "rtdetr_l" in html
    section = html[html.index("<section id='detector'>"):]
    section = section[:section.index("</section>")]
    assert "<tr class='ref'><td class='txt' title='rtdetr_l'>rtdetr_l</td>" in section  # the reference row, marked
    assert "Δ latency %" in section and "at 256 px" in section
    for plot in ("plot-det-macs-latency", "plot-det-params-latency"):  # one point per detector
        assert f"id='{plot}' data-marks='2'" in section


def test_baseline_prints_the_reference_row_alone(tmp_path) -> None:
    out = tmp_path / "base"
    res = run(["baseline", *FAST, "--no-crosscheck", "--out", str(out)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "compare.csv")
    assert list(frame["name"]) == ["rtdetr_l"] and frame.loc[0, "family"] == "rtdetr"
    assert frame.loc[0, "det_params"] == 32_147_372 and frame.loc[0, "det_params_delta_pct"] == 0.0
    assert frame.loc[0, "params_train_form"] == 32_970_476  # the detector, not its HGNetv2-L backbone
    assert "nasbench baseline" in res.output and (out / "index.html").is_file()


def test_rtdetr_l_is_the_whole_detector_at_640_px(tmp_path) -> None:
    """`compare rtdetr_l` used to print HGNetv2-L with a classifier (15.6M params) under the detector's name."""
    csv = tmp_path / "rt.csv"
    res = run(["compare", "rtdetr_l", "hgnetv2_l", "--device", "cpu", "--runs", "1", "--warmup", "0",
               "--no-crosscheck", "--csv", str(csv), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(csv).set_index("name")
    rt, backbone = rows.loc["rtdetr_l"], rows.loc["hgnetv2_l"]
    assert rt["params_train_form"] == 32_970_476 and rt["params"] == 32_147_372 and rt["imgsz"] == 640
    assert rt["flops"] == 2 * rt["macs"] and 100e9 < rt["flops"] < 112e9  # Ultralytics quotes ~110 GFLOPs
    assert backbone["params_train_form"] < 16e6  # the backbone is its own name


def test_help_says_why_detector_columns_are_opt_in() -> None:
    res = run(["compare", "--help"])
    assert "--detector" in res.output and "slow" in res.output and "--det-imgsz" in res.output
    assert "rtdetr_l" in run(["baseline", "--help"]).output or "rtdetr-l" in run(["baseline", "--help"]).output


@pytest.mark.parametrize(
    "source, message",
    [
        ("import torch.nn as nn\ndef f():\n    return nn.Conv2d(3, 8, 3)\n",
         "model 'f' cannot be an RT-DETR backbone: Conv2d has no forward_features()"),
        ("import torch.nn as nn, torch.nn.functional as F\n"
         "class B(nn.Module):\n"
         "    out_channels = (8, 8, 8)\n    out_strides = (8, 16, 32)\n"
         "    def __init__(self):\n        super().__init__(); self.c = nn.Conv2d(3, 8, 1)\n"
         "    def forward_features(self, x):\n        y = self.c(F.avg_pool2d(x, 8)); return [y, y, y]\n"
         "    def forward(self, x):\n        return self.forward_features(x)[-1]\n"
         "def f():\n    return B()\n",
         "do not decrease from level to level"),
    ],
)
def test_bad_backbone_exits_2_with_one_line(tmp_path, source: str, message: str) -> None:
    user = tmp_path / "u.py"
    user.write_text(source)
    res = run(["compare", f"{user}:f", *FAST, "--detector", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
