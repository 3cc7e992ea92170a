"""The study report files: self-contained, escaped, complete, atomic; and the `report` command."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re

import optuna
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from markupsafe import escape  # the escaper the page templates use

from nasbench.cli import NasbenchGroup
from nasbench.errors import UserError
from nasbench.report import study_html
from nasbench.report.command import report
from nasbench.report.page import DEPLOY_NOTE, MACS_NOTE
from nasbench.report.study import load_study_data, report_dirname
from nasbench.report.study_html import SCRIPT, render_study_html, write_study_report
from tests.report.synthetic import EVIL, make_study

PLOTS = ("plot-pareto", "plot-macs-latency", "plot-history", "plot-importance")


@pytest.fixture(scope="module")
def proxy_html(proxy_study) -> str:
    return render_study_html(load_study_data(proxy_study))


def plot_marks(page: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"<svg [^>]*id='([^']+)' data-marks='(\d+)'", page)}


def test_writes_three_files(proxy_study, tmp_path):
    written = write_study_report(proxy_study, tmp_path / "r")
    assert sorted(p.name for p in written) == ["index.html", "pareto.csv", "trials.csv"]
    trials = pd.read_csv(tmp_path / "r" / "trials.csv")
    pareto = pd.read_csv(tmp_path / "r" / "pareto.csv")
    assert len(trials) == len(proxy_study.trials) and 0 < len(pareto) == int(trials["pareto"].sum())
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]  # no temp files left


def test_page_is_self_contained(proxy_html):
    refs = re.findall(r"(?:src|href|action)\s*=\s*['\"]([^'\"]*)", proxy_html)
    assert refs and all(r.startswith("#") for r in refs), [r for r in refs if not r.startswith("#")]
    urls = set(re.findall(r"https?://[^\s'\"<>)]+", proxy_html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace is a name, never fetched
    assert "<link" not in proxy_html and "@import" not in proxy_html and "url(" not in proxy_html
    # The only script is ours, pinned by hash in the Content-Security-Policy.
    assert proxy_html.count("<script") == 1
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in proxy_html and "default-src 'none'" in proxy_html


def test_every_section_and_plot_is_there(proxy_html):
    marks = plot_marks(proxy_html)
    assert set(PLOTS) <= set(marks) and all(marks[p] > 0 for p in PLOTS), marks
    for anchor in ("summary", "pareto", "cost", "history", "importance", "configs", "trials", "columns", "method"):
        assert f"id='{anchor}'" in proxy_html
    for text in ("Synthetic CPU @ 2.0GHz", "torch", "2.13.0", "threads", "search wall time", "20 min 34 s",
                 "FLOPs = 2 × MACs", "SYNTHETIC", "PED-ANOVA", "mobilevit_xxs", "rtdetr_l"):
        assert text in proxy_html, text
    assert "class='sortable'" in proxy_html and "id='detector'" not in proxy_html  # no det_* in this study
    assert escape(MACS_NOTE) in proxy_html and escape(DEPLOY_NOTE) in proxy_html  # shared with compare


def test_every_csv_column_is_documented(proxy_study, proxy_html):
    cols = load_study_data(proxy_study, importances=False).trials.columns
    section = proxy_html[proxy_html.index("<table id='columns'>"):]
    for col in cols:
        assert f"<code>{col}</code>" in section


def test_user_strings_are_escaped(evil_detector_study):
    page = render_study_html(load_study_data(evil_detector_study))
    assert page.count("<script") == 1  # only ours; EVIL appears in name, path, knob value and reasons
    assert "alert('x')" not in page  # html.escape also escapes the quotes
    escaped = escape(EVIL)
    assert f"<h1 id='study-name'>det{escaped}</h1>" in page
    assert f"spaces/{escaped}.yaml" in page
    assert page.count(escaped) >= 5


def test_cost_only_study(cost_study):
    page = render_study_html(load_study_data(cost_study))
    assert "MACs, G (objective)" in page and "Cost-only search" in page and "No proxy training" in page
    assert "proxy top-1" not in page.split("id='method'")[0].split("id='pareto'")[1].split("</svg>")[0]
    assert all(plot_marks(page)[p] > 0 for p in PLOTS)


def test_detector_cost_vs_rtdetr(evil_detector_study):
    page = render_study_html(load_study_data(evil_detector_study))
    section = page[page.index("<section id='detector'>"):]
    section = section[:section.index("</section>")]
    assert "rtdetr_l" in section and "1.00×" in section and "latency vs rtdetr_l" in section
    assert "at 640 px" in section


def test_too_few_trials_is_said_not_crashed(tmp_path):
    page = render_study_html(load_study_data(make_study(4, name="young")))
    assert "Not enough trials" in page and "id='plot-importance'" not in page
    page = render_study_html(load_study_data(optuna.create_study(study_name="empty")))
    assert "no feasible completed trial yet" in page


def test_pareto_yaml_is_a_config_compare_can_load():
    from nasbench import zoo
    from nasbench.families.base import config_to_dict

    fam, cfg = zoo.all_presets()["efficientvit_m0"]
    config = {"family": fam.name, **{k: v for k, v in config_to_dict(cfg).items() if k != "num_classes"}}
    study = optuna.create_study(study_name="one", direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        value=40.0, params={"width": 1.0}, distributions={"width": optuna.distributions.FloatDistribution(0.5, 2)},
        user_attrs={"name": "t0000", "config": config, "feasible": True,
                    "row": {"latency_ms": 5.0, "macs": 79_000_000, "params": 2_000_000}}))
    page = render_study_html(load_study_data(study))
    block = re.search(r"<pre id='yaml-0'>(.*?)</pre>", page, re.S).group(1)
    spec = zoo.spec_from_mapping(yaml.safe_load(html.unescape(block)), default_name="x")
    assert spec.name == "t0000" and spec.family == "efficientvit" and spec.config == cfg


def test_interrupted_report_leaves_the_previous_one(proxy_study, tmp_path, monkeypatch):
    out = tmp_path / "r"
    write_study_report(proxy_study, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study_html, "render_study_html", interrupted)  # Ctrl-C while rendering
    with pytest.raises(KeyboardInterrupt):
        write_study_report(make_study(20, name="other"), out)
    monkeypatch.undo()
    real_replace = os.replace

    def replace_fails_for_index(src, dst):
        if str(dst).endswith("index.html"):
            raise KeyboardInterrupt  # Ctrl-C while the page itself is being moved into place
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_fails_for_index)
    with pytest.raises(KeyboardInterrupt):
        write_study_report(make_study(20, name="other"), out)
    monkeypatch.undo()
    assert (out / "index.html").read_bytes() == before["index.html"]
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no half-written temp files


def test_unwritable_output_is_a_user_error(proxy_study, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write report directory"):
        write_study_report(proxy_study, blocker / "sub")


# ----------------------------------------------------------------------------- command
def run(args: list[str]):
    return CliRunner().invoke(NasbenchGroup(commands={"report": report}), args)


def test_report_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/s.db"
    make_study(24, storage=url, name=f"cpu{EVIL}")
    result = run(["report", f"cpu{EVIL}", "--storage", url])
    assert result.exit_code == 0, result.output
    assert "Pareto set of cpu<script>" in result.output and "SYNTHETIC" in result.output
    # one safe directory under reports/, with a hash of the raw name because cleaning changed it
    out = tmp_path / "reports" / report_dirname(f"cpu{EVIL}")
    assert out.name.startswith("cpu_script_alert_x_script-") and len(out.name) == len("cpu_script_alert_x_script") + 9
    assert (out / "index.html").is_file() and (out / "trials.csv").is_file()
    assert "wrote" in result.output

    result = run(["report", "cpu", "--storage", url])
    assert result.exit_code == 2 and "did you mean" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "reports" / "cpu").exists()  # nothing created for a wrong name


def test_report_command_never_shows_a_password(tmp_path):
    result = run(["report", "x", "--storage", "postgresql://bob:hunter2@127.0.0.1:1/nas", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "hunter2" not in result.output and "bob:***@" in result.output


def test_notes_say_when_pruning_used_a_probe_of_the_val_set(proxy_study):
    data = load_study_data(proxy_study)
    assert not any("class-balanced" in n for n in study_html.methodology_notes(data))  # older studies: no key
    data.attrs["proxy"] = {**data.attrs["proxy"], "val_images": 10000, "probe_val_images": 1000}
    notes = [n for n in study_html.methodology_notes(data) if "class-balanced" in n]
    assert notes == ["Pruning compared intermediate top-1 on a fixed, class-balanced 1,000 of the 10,000 validation "
                     "images; the final proxy_top1 always uses all 10,000."]
