"""The README's Python API example, run as written, and the API's numbers against the command's."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pandas as pd
from click.testing import CliRunner

import nasbench
from nasbench.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    return re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.DOTALL).group(1)


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md (api-example)", "exec"), scope)  # noqa: S102 - our own README
    row, frame, study = scope["row"], scope["frame"], scope["study"]
    assert row["params_train_form"] == 1_272_024 and row["params"] == 1_269_968  # timm's count, BN folded
    assert row["flops"] == 2 * row["macs"] and row["latency_ms"] > 0
    assert list(frame["name"]) == ["mobilevit_xxs", "efficientvit_m0"]
    assert isinstance(study, optuna.Study) and len(study.trials) == 2
    assert (tmp_path / "reports" / study.study_name / "index.html").is_file()
    assert study.study_name in capsys.readouterr().out


def test_measure_gives_the_numbers_of_compare(tmp_path) -> None:
    """One code path: a preset's counts through the API equal the command's CSV."""
    csv = tmp_path / "c.csv"
    res = CliRunner().invoke(main, ["compare", "efficientvit_m0", "--device", "cpu", "--runs", "1", "--warmup", "0",
                                    "--no-crosscheck", "--csv", str(csv), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    cli_row = pd.read_csv(csv).iloc[0]
    api_row = nasbench.measure("efficientvit_m0", device="cpu", crosscheck=False)
    for column in ("params", "params_train_form", "macs", "flops", "imgsz"):
        assert api_row[column] == cli_row[column], column
    model = nasbench.create_model("efficientvit_m0")
    assert nasbench.measure(model, device="cpu", crosscheck=False)["macs"] == cli_row["macs"]  # a built module too
