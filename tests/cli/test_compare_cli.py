"""`nasbench compare` and `nasbench models` end to end, and bad input -> one line, exit 2."""

from __future__ import annotations

import html
import os
import re

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from markupsafe import escape  # the escaper the page templates use

from nasbench import zoo
from nasbench.cli import main
from nasbench.estimate import estimator_validity, get_estimator, heldout_validity
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import count_params
from nasbench.report.page import DEPLOY_NOTE, MACS_NOTE
from nasbench.report.schema import column_doc

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


# ----------------------------------------------------------------------------- the comparison report
EVIL_FILE = "cfg<b>bold.yaml"  # the config file's stem becomes the model's label


@pytest.fixture(scope="module")
def compare_report(tmp_path_factory):
    """One real small comparison (two presets and a config file with markup in its name), its report dir."""
    root = tmp_path_factory.mktemp("cmp")
    (root / EVIL_FILE).write_text("family: efficientvit\npreset: efficientvit_m0\n")
    out = root / "rep"
    res = run(["compare", "mobilevit_xxs", "efficientvit_m0", str(root / EVIL_FILE), *FAST, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_compare_report_files(compare_report) -> None:
    assert sorted(p.name for p in compare_report.iterdir()) == ["compare.csv", "index.html"]  # no temp files left


def test_compare_csv_round_trips_with_the_zoo_counts(compare_report) -> None:
    text = (compare_report / "compare.csv").read_text()
    frame = pd.read_csv(compare_report / "compare.csv")
    assert frame.to_csv(index=False) == text  # read back and written again: the same bytes
    assert list(frame["name"]) == ["mobilevit_xxs", "efficientvit_m0", "cfg<b>bold"]
    for col in ("imgsz", "params", "params_train_form", "macs", "flops", "macs_fvcore", "macs_thop", "latency_runs"):
        assert frame[col].dtype == "int64", col  # numbers, not formatted strings
    for col in ("latency_ms", "latency_p10_ms", "latency_p90_ms"):
        assert frame[col].dtype == "float64" and (frame[col] > 0).all(), col
    assert frame["deploy_form"].dtype == bool
    for name, preset in zip(frame["name"], ["mobilevit_xxs", "efficientvit_m0", "efficientvit_m0"]):
        model = zoo.create(preset)
        train_form = count_params(model)[0]
        row = frame.set_index("name").loc[name]
        assert row["params_train_form"] == train_form
        assert row["params"] == count_params(fuse_for_deploy(model))[0] < train_form
    assert all(column_doc(c) for c in frame.columns), [c for c in frame.columns if not column_doc(c)]


def test_compare_page_escapes_a_user_label(compare_report) -> None:
    page = (compare_report / "index.html").read_text()
    assert "cfg<b>bold" not in page and "<b>bold" not in page
    assert page.count(escape("cfg<b>bold")) >= 4  # title, tables, plot labels, config block
    assert page.count("<script") == 1  # ours only


def test_compare_page_plots_one_point_per_model(compare_report) -> None:
    page = (compare_report / "index.html").read_text()
    marks = {m.group(1): int(m.group(2)) for m in re.finditer(r"<svg [^>]*id='([^']+)' data-marks='(\d+)'", page)}
    assert marks == {"plot-macs-latency": 3, "plot-params-latency": 3}  # no detector plots without --detector
    svg = page[page.index("id='plot-macs-latency'"):]
    svg = svg[:svg.index("</svg>")]
    for label in ("mobilevit_xxs", "efficientvit_m0", "cfg&lt;b&gt;bold"):
        assert f">{label}</text>" in svg
    assert ">mobilevit</text>" in svg and ">efficientvit</text>" in svg  # the legend names the families


def test_compare_page_sections(compare_report) -> None:
    page = (compare_report / "index.html").read_text()
    for anchor in ("summary", "results", "cost", "params", "configs", "columns", "method"):
        assert f"<section id='{anchor}'>" in page, anchor
    for anchor in ("pareto", "history", "importance", "trials", "detector"):  # study-only / --detector only
        assert f"id='{anchor}'" not in page and f"href='#{anchor}'" not in page, anchor
    first = pd.read_csv(compare_report / "compare.csv").iloc[0]
    for text in ("nasbench compare report", escape(first["device_name"]), first["torch_version"], "threads",
                 "wall time", first["counter"], "fvcore MACs G", "thop MACs G", "No proxy task", "64 px"):
        assert text in page, text
    assert escape(MACS_NOTE) in page and escape(DEPLOY_NOTE) in page  # the study page's notes, one source


def test_compare_page_configs_load_back(compare_report) -> None:
    page = (compare_report / "index.html").read_text()
    blocks = dict(re.findall(r"<pre id='yaml-(\d+)'>(.*?)</pre>", page, re.DOTALL))
    assert sorted(blocks) == ["0", "1", "2"]
    for key, preset in (("0", "mobilevit_xxs"), ("2", "efficientvit_m0")):
        spec = zoo.spec_from_mapping(yaml.safe_load(html.unescape(blocks[key])), default_name="x")
        assert spec.config == zoo.resolve(preset).config
    assert "<a href='#cfg-2'>cfg&lt;b&gt;bold</a>" in page  # the results table links each name to its config


def test_compare_estimate_for_a_preset_and_a_user_factory(tmp_path) -> None:
    factory = tmp_path / "net.py"
    factory.write_text(
        "from torch import nn\n"
        "def small():\n"
        "    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),\n"
        "                         nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1000))\n")
    out = tmp_path / "rep"
    res = run(["compare", "efficientvit_m0", f"{factory}:small", "--device", "cpu", "--runs", "3", "--warmup", "1",
               "--no-crosscheck", "--estimate", "--out", str(out)], env={"COLUMNS": "400"})  # no wrapped cells
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "compare.csv")
    assert list(frame["estimator"]) == ["fit_cost_grad_norm"] * 2
    assert frame.loc[0, "published_top1"] == 63.2 and pd.isna(frame.loc[1, "published_top1"])
    assert frame["est_top1"].between(0.1, 100).all()
    assert abs(frame.loc[0, "est_top1"] - 63.2) < 6  # the family held out of the fit, still close
    # the error that applies: leave-one-family-out for the zoo family, held-out classic models for the factory
    default = get_estimator("default")
    assert frame.loc[0, "est_error_points"] == pytest.approx(estimator_validity(default).mae, abs=1e-9)
    assert frame.loc[1, "est_error_points"] == pytest.approx(heldout_validity(default.name)["mae"], abs=1e-9)
    flat = " ".join(res.output.split())  # rich wraps the validity line
    assert "± est. error" in flat and "on 30 classic ImageNet models outside the zoo: Kendall tau 0.54" in flat
    assert "est. top-1 %" in res.output and "leave-one-family-out over 31 published presets" in res.output
    assert "est_top1" in (out / "index.html").read_text()


def test_compare_unknown_estimator_fails_before_measuring(tmp_path) -> None:
    res = CliRunner().invoke(main, ["compare", "mobilevit_xxs", "--estimate", "zicoo", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "unknown estimator 'zicoo'; did you mean zico" in res.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_models_shows_published_top1_and_sources() -> None:
    res = run(["models", "--family", "volo", "--no-cost"])
    assert res.exit_code == 0
    assert "84.20 (@224)" in res.output and "sail-sg/volo README" in res.output


def test_models_family_shows_the_family_modules_description_and_notes() -> None:
    from nasbench import zoo

    fam = zoo.all_families()["ghostnetv3"]
    res = run(["models", "--family", "ghostnetv3", "--no-cost"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())  # rich wraps long lines
    assert fam.description and " ".join(fam.description.split()) in flat
    assert fam.notes and " ".join(fam.notes.split())[:80] in flat
    everything = " ".join(run(["models", "--no-cost"]).output.split())
    assert " ".join(fam.notes.split())[:80] not in everything  # notes only for the family asked about


def test_estimators_lists_the_held_out_figures_beside_the_leave_one_family_out_ones() -> None:
    res = run(["estimators"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    line = next(row for row in res.output.splitlines() if "fit_cost_grad_norm (default)" in row)
    default = get_estimator("default")
    v, held = estimator_validity(default), heldout_validity(default.name)
    cells = [f"{v.tau:.3f}", f"{v.mae:.2f}", f"{held['tau']:.3f}", f"{held['mae']:.2f}"]
    assert cells == ["0.947", "1.15", "0.540", "5.27"] and all(c in line for c in cells)
