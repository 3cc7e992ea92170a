"""`nasbench compare` and `nasbench models` end to end, and bad input -> one line, exit 2."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from nasbench.cli import main

FAST = ["--device", "cpu", "--runs", "3", "--warmup", "1", "--imgsz", "64"]
REQUIRED_COLUMNS = {"name", "family", "imgsz", "params", "macs", "flops", "macs_fvcore", "macs_thop",
                    "latency_ms", "latency_p10_ms", "latency_p90_ms", "device"}


def run(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_compare_writes_csv_and_html(tmp_path) -> None:
    out = tmp_path / "rep"
    csv = tmp_path / "extra.csv"
    res = run(["compare", "mobilevit_xxs", "mobilevitv2_050", *FAST, "--out", str(out), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "compare.csv")
    assert REQUIRED_COLUMNS <= set(frame.columns)
    assert list(frame["name"]) == ["mobilevit_xxs", "mobilevitv2_050"]
    assert list(frame["params_train_form"]) == [1_272_024, 1_370_593]  # published counts
    assert list(frame["params"]) == [1_269_968, 1_366_705]  # BN folded: one bias per BN channel
    assert frame["deploy_form"].all()
    assert (frame["flops"] == 2 * frame["macs"]).all()
    assert (frame["latency_p10_ms"] <= frame["latency_p90_ms"]).all()
    assert pd.read_csv(csv).equals(frame)
    html = (out / "index.html").read_text()
    assert "mobilevitv2_050" in html and "FLOPs = 2 × MACs" in html
    assert "MACs G" in res.output and "wrote" in res.output


def test_models_lists_presets_with_costs() -> None:
    res = run(["models", "--family", "mobilevit"])
    assert res.exit_code == 0
    assert "mobilevit_s" in res.output and "5.579" in res.output  # train-form params M of mobilevit_s


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "mobilevit_ss"], "unknown model 'mobilevit_ss'; did you mean mobilevit_s"),
        (["compare", "mobilevit_s", "--device", "cuda"], "CUDA is not available"),
        (["compare", "mobilevit_s", "--imgsz", "0"], "Invalid value for '--imgsz'"),
        (["compare", "mobilevit_s", "--batch", "-1"], "Invalid value for '--batch'"),
        (["models", "--family", "mobilevitt"], "unknown family 'mobilevitt'"),
    ],
)
def test_bad_input_one_line_exit_2(args, message: str) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    res = run(args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_bad_config_and_factory_files(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("family: nope\n")
    res = run(["compare", str(cfg)])
    assert res.exit_code == 2 and "unknown family 'nope'" in res.output
    user = tmp_path / "u.py"
    user.write_text("raise RuntimeError('broken on import')\n")
    res = run(["compare", f"{user}:f"])
    assert res.exit_code == 2 and "RuntimeError: broken on import" in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so an unwritable dir cannot be made")
def test_unwritable_output(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    res = run(["compare", "mobilevit_xxs", *FAST, "--out", str(locked / "r")])
    assert res.exit_code == 2 and "cannot write report directory" in res.output


def test_output_path_that_is_a_file(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    res = run(["compare", "mobilevit_xxs", *FAST, "--out", str(blocker / "r")])
    assert res.exit_code == 2 and "cannot write report directory" in res.output
    assert blocker.read_text() == "keep me"


def test_user_model_that_cannot_take_the_input(tmp_path) -> None:
    user = tmp_path / "u.py"
    user.write_text("import torch.nn as nn\ndef f():\n    return nn.Linear(5, 5)\n")
    res = run(["compare", f"{user}:f", *FAST, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "failed on a 1x3x64x64 input" in res.output
