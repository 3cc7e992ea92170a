"""Every bad input listed in docs/bad-input.md: one line, exit code 2, no traceback, nothing damaged.

The cases run in one workspace (a module-scoped temporary directory used as the working
directory) that already holds a study ``tiny`` in the default storage
(``studies/nasbench.db``, made by a tiny cost-only search) and its report under
``reports/tiny/``. After every bad command the study still has its trials and no file
of the workspace was changed or removed.

The table in docs/bad-input.md is made from these cases and their real output:
``python -m tests.cli.test_bad_input`` prints it.
"""

from __future__ import annotations

import ast
import os
import pickle
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from nasbench.cli import main
from tests.helpers import TINY_SPACE

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "secret"  # in the storage URLs below; must never be printed

TINY_SEARCH = ["search", "--space", "tiny.yaml", "--budget", "1s", "--no-train", "--study", "tiny", "--device", "cpu"]


def _space(**changes) -> dict:
    space = yaml.safe_load(yaml.safe_dump(TINY_SPACE))
    for key, value in changes.items():
        space[key] = value
    return space


def _knobs(**changes) -> dict:
    return dict(TINY_SPACE["knobs"], **changes)


# Files of the workspace, relative to it: (path, text). Images and pickles are made in make_workspace.
TEXT_FILES = {
    "tiny.yaml": yaml.safe_dump(TINY_SPACE),
    "space_min_gt_max.yaml": yaml.safe_dump(_space(knobs=_knobs(transformer_blocks={"int": [4, 1], "per_stage": 3}))),
    "space_empty_choices.yaml": yaml.safe_dump(
        _space(knobs=_knobs(width={"choices": [], "scale": ["stage_channels"]}))),
    "space_unknown_constraint_knob.yaml": yaml.safe_dump(_space(constraints=[{"divisible": ["transformer_dimz",
                                                                                           "heads"]}])),
    "space_unknown_field.yaml": yaml.safe_dump(_space(knobs=_knobs(depth={"int": [1, 3]}))),
    "space_unknown_family.yaml": yaml.safe_dump(_space(family="mobilevitt")),
    "space_broken.yaml": "family: mobilevit\nknobs: {width: [0.5, 1.0\n",
    "space_bad_choice_type.yaml": yaml.safe_dump(_space(knobs=_knobs(heads={"choices": ["two", "four"]}))),
    "cfg_unknown_knob.yaml": "family: mobilevit\npreset: mobilevit_xxs\nhaeds: 4\n",
    "cfg_bad_type.yaml": "family: mobilevit\npreset: mobilevit_xxs\nheads: four\n",
    "cfg_unknown_family.yaml": "family: mobilevitt\n",
    "cfg_not_mapping.yaml": "- mobilevit\n- heads: 4\n",
    "factory_raises.py": "def make():\n    raise RuntimeError('weights file missing')\n",
    "factory_not_module.py": "def make():\n    return {'conv': 3}\n",
    "factory_import_fails.py": "import not_installed_pkg\n\n\ndef make():\n    return None\n",
    # the reliability issue's rows
    "cfg_alias_bomb.yaml": "family: mobilevit\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(9)),
    "space_alias_bomb.yaml": yaml.safe_dump(TINY_SPACE) + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(9)),
    "space_huge_depth.yaml": yaml.safe_dump(_space(knobs=_knobs(transformer_blocks={"int": [1, 1000000],
                                                                                   "per_stage": 3}))),
    "space_rate_range.yaml": yaml.safe_dump(_space(knobs=_knobs(drop_rate={"float": [2, 5]}))),
    "cfg_drop_rate.yaml": "family: mobilevit\npreset: mobilevit_xxs\ndrop_rate: 5.0\n",
    "cfg_too_wide.yaml": "family: mobilevit\npreset: mobilevit_xxs\nstage_channels: [16, 24, 48, 64, 100000]\n",
    "cfg_negative_classes.yaml": "family: mobilevit\npreset: mobilevit_xxs\nnum_classes: -5\n",
}


@dataclass(frozen=True)
class Case:
    name: str  # the test id
    args: tuple[str, ...]  # after `nasbench`
    words: tuple[str, ...]  # must all appear in the one line
    exit_code: int = 2
    xfail: str | None = None  # a known bug, the fix proposed in the report


def case(name: str, command: str, *words: str, exit_code: int = 2, xfail: str | None = None) -> Case:
    return Case(name, tuple(shlex.split(command)), words, exit_code, xfail)


PG = f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"
CASES = [
    # --budget forms (accepted: 30ms, 30 ms, 0.03s, 30000us)
    case("budget_word", "search --space tiny.yaml --budget abc --study tiny", "cannot read budget 'abc'", "30ms"),
    case("budget_negative", "search --space tiny.yaml --budget -5ms --study tiny", "cannot read budget '-5ms'"),
    case("budget_zero", "search --space tiny.yaml --budget 0ms --study tiny", "budget must be positive", "'0ms'"),
    case("budget_no_unit", "search --space tiny.yaml --budget 30 --study tiny", "cannot read budget '30'", "unit"),
    case("budget_fps", "search --space tiny.yaml --budget '30 fps' --study tiny", "cannot read budget '30 fps'"),
    case("cap_unit", "search --space tiny.yaml --budget 1s --max-params 5MB --study tiny",
         "cannot read --max-params '5MB'", "5M"),
    # unknown names
    case("unknown_space", "search --space mobilvit --budget 30ms", "unknown space 'mobilvit'",
         "did you mean mobilevit"),
    case("unknown_model", "compare mobilevit_ss efficientvit_m0", "unknown model 'mobilevit_ss'", "did you mean",
         "mobilevit_s"),
    case("unknown_family", "models --family ghostnet", "unknown family 'ghostnet'", "ghostnetv3"),
    case("unknown_sampler", "search --space tiny.yaml --budget 1s --sampler cmaes", "'--sampler'", "'cmaes'", "tpe"),
    case("unknown_device", "compare mobilevit_xxs --device tpu", "unknown device 'tpu'"),
    case("unknown_estimator_compare", "compare mobilevit_xxs --estimate zicoo", "unknown estimator 'zicoo'",
         "did you mean zico"),
    case("unknown_estimator_search", "search --space tiny.yaml --budget 1s --estimator synflw --study tiny",
         "unknown estimator 'synflw'", "did you mean synflow"),
    case("unknown_objective", "search --space tiny.yaml --budget 1s --objective accuracy", "'--objective'",
         "'accuracy'", "estimate"),
    case("data_without_proxy_objective", "search --space tiny.yaml --budget 1s --data data/nope",
         "--data is the training data of --objective proxy"),
    case("no_train_contradicts_objective", "search --space tiny.yaml --budget 1s --no-train --objective proxy",
         "--no-train means --objective macs"),
    case("resume_other_objective", "search --space tiny.yaml --budget 1s --objective estimate --study tiny "
         "--device cpu", "study 'tiny' was created with objective='macs'", "nothing was changed"),
    case("unknown_command", "serach --space tiny.yaml", "No such command 'serach'"),
    # search-space YAML
    case("space_min_gt_max", "search --space space_min_gt_max.yaml --budget 1s",
         "knob 'transformer_blocks'", "min 4 > max 1"),
    case("space_empty_choices", "search --space space_empty_choices.yaml --budget 1s",
         "knob 'width'", "choices must be a non-empty list"),
    case("space_constraint_unknown_knob", "search --space space_unknown_constraint_knob.yaml --budget 1s",
         "constraint divisible names unknown knob/field 'transformer_dimz'"),
    case("space_knob_unknown_field", "search --space space_unknown_field.yaml --budget 1s",
         "knob 'depth'", "not a config field"),
    case("space_unknown_family", "search --space space_unknown_family.yaml --budget 1s",
         "unknown family 'mobilevitt'", "did you mean mobilevit"),
    case("space_broken_yaml", "search --space space_broken.yaml --budget 1s", "cannot read space space_broken.yaml"),
    case("space_bad_choice_type", "search --space space_bad_choice_type.yaml --budget 1s",
         "knob 'heads'", "must be an integer, got 'two'"),
    case("space_missing_file", "search --space nope.yaml --budget 1s", "space file not found: nope.yaml"),
    # config YAML and user factories (MODEL arguments)
    case("config_unknown_knob", "compare cfg_unknown_knob.yaml", "unknown knob 'haeds'", "did you mean 'heads'"),
    case("config_bad_value_type", "compare cfg_bad_type.yaml", "knob 'heads'", "must be an integer, got 'four'"),
    case("config_unknown_family", "compare cfg_unknown_family.yaml", "unknown family 'mobilevitt'", "mobilevit"),
    case("config_not_mapping", "compare cfg_not_mapping.yaml", "must be a mapping with a 'family:' key"),
    case("config_missing_file", "compare nope.yaml", "config file not found: nope.yaml"),
    case("factory_raises", "compare factory_raises.py:make", "factory 'factory_raises.py:make' raised RuntimeError",
         "weights file missing"),
    case("factory_not_module", "compare factory_not_module.py:make", "returned dict, not a torch.nn.Module"),
    case("factory_missing_function", "compare factory_raises.py:build", "'factory_raises.py' has no callable 'build'"),
    case("factory_import_fails", "compare factory_import_fails.py:make", "cannot import 'factory_import_fails.py'",
         "not_installed_pkg"),
    case("factory_missing_file", "compare nope.py:make", "model file not found: nope.py"),
    # input size and numbers
    case("imgsz_zero", "compare mobilevit_xxs --imgsz 0", "'--imgsz'", "0"),
    case("train_imgsz_too_small", "train mobilevit_xxs --imgsz 4", "--imgsz must be at least 8 px, got 4"),
    case("search_imgsz_too_small", "search --space tiny.yaml --budget 1s --imgsz 8", "'--imgsz'", "8"),
    case("trials_zero", "search --space tiny.yaml --budget 1s --trials 0 --study tiny", "'--trials'", "0"),
    case("threads_zero", "compare mobilevit_xxs --threads 0", "'--threads'", "0"),
    case("resume_other_budget", "search --space tiny.yaml --budget 2s --no-train --study tiny --device cpu",
         "study 'tiny' was created with budget_ms=1000.0", "nothing was changed"),
    # storage
    case("storage_unreachable_password", f"search --space tiny.yaml --budget 1s --no-train --storage {PG}",
         "cannot open storage postgresql://u:***@127.0.0.1:1/x"),
    case("report_storage_unreachable", f"report tiny --storage {PG}",
         "cannot open storage postgresql://u:***@127.0.0.1:1/x"),
    case("storage_unknown_scheme", "search --space tiny.yaml --budget 1s --no-train --storage foo://",
         "cannot open storage foo://", "sqlite:///", "postgresql://", "journal:"),
    case("report_unknown_study", "report tyni", "no study 'tyni'", "did you mean tiny"),
    case("report_no_database", "report tiny --storage sqlite:///studies/other.db",
         "no study database at studies/other.db"),
    case("export_unknown_study", "export tyni", "no study 'tyni'", "did you mean tiny"),
    case("export_unknown_trial", "export tiny --trial 99", "study 'tiny' has no trial 99"),
    case("export_trial_and_pareto", "export tiny --trial 0 --pareto", "either --trial N or --pareto"),
    # unwritable studies/ or reports/ (a file stands where the directory must be: works as root too)
    case("studies_unwritable", "search --space tiny.yaml --budget 1s --no-train --storage sqlite:///blocked/s.db",
         "cannot write study directory 'blocked'", "not a directory"),
    case("reports_unwritable", "search --space tiny.yaml --budget 1s --no-train --study tiny --out blocked/tiny",
         "cannot write report directory 'blocked/tiny'"),
    case("report_out_unwritable", "report tiny --out blocked/tiny", "cannot write report directory 'blocked/tiny'"),
    case("compare_out_unwritable", "compare mobilevit_xxs --out blocked/cmp",
         "cannot write report directory 'blocked/cmp'"),
    case("train_out_unwritable", "train mobilevit_xxs --data data/few --steps 1 --batch 2 --out blocked/train",
         "cannot write output folder 'blocked/train'", "'blocked' is not a directory"),
    # proxy training data
    case("data_missing", "train mobilevit_xxs --data data/nope", "data directory not found: data/nope"),
    case("data_is_file", "train mobilevit_xxs --data tiny.yaml", "--data must be a directory, not a file"),
    case("data_empty", "train mobilevit_xxs --data data/empty", "data directory is empty: data/empty"),
    case("data_no_class_folders", "train mobilevit_xxs --data data/loose", "no class folders in data directory"),
    case("data_classes_differ", "train mobilevit_xxs --data data/split",
         "train/ and val/ class folders differ", "only in train: ['dog']", "only in val: ['bird']"),
    case("data_batch_too_large", "train mobilevit_xxs --data data/few --batch 64",
         "--batch 64 is larger than the training set"),
    case("data_evil_pickle", "train mobilevit_xxs --data data/evil", "refusing to load", "system from a CIFAR pickle"),
    case("steps_and_epochs", "train mobilevit_xxs --data data/few --batch 2 --steps 5 --epochs 1",
         "either --steps or --epochs, not both"),
    case("train_unknown_model", "train mobilevit_ss --steps 1", "unknown model 'mobilevit_ss'"),
    case("steps_zero", "train mobilevit_xxs --steps 0", "--steps must be at least 1, got 0"),
    case("search_data_missing", "search --space tiny.yaml --budget 1s --objective proxy --data data/nope",
         "data directory not found: data/nope"),
    # user text holding rich markup is printed as typed (it used to raise MarkupError or lose "[v2]")
    case("markup_study_name", "report 'x[/]y'", "no study 'x[/]y'"),
    case("markup_config_name", "compare 'model[v2].yaml'", "config file not found: model[v2].yaml"),
    case("markup_budget", "search --space tiny.yaml --budget '1[/]ms' --study tiny", "cannot read budget '1[/]ms'"),
    # resource bounds, before anything is built or decoded
    case("config_alias_bomb", "compare cfg_alias_bomb.yaml", "cannot read config cfg_alias_bomb.yaml",
         "YAML aliases (*name) are not accepted"),
    case("space_alias_bomb", "search --space space_alias_bomb.yaml --budget 1s", "cannot read space",
         "YAML aliases (*name) are not accepted"),
    case("space_huge_depth", "search --space space_huge_depth.yaml --budget 1s", "knob 'transformer_blocks'",
         "1000000 is out of bounds", "plausible limit of 16384"),
    case("config_too_wide", "compare cfg_too_wide.yaml", "stage_channels", "plausible limit of 16384"),
    case("train_imgsz_too_large", "train mobilevit_xxs --imgsz 100000", "--imgsz must be at most 1024 px"),
    # implausible numbers: one line, never the builder's traceback
    case("config_drop_rate", "compare cfg_drop_rate.yaml", "drop_rate is a probability in [0, 1), got 5.0"),
    case("space_rate_range", "search --space space_rate_range.yaml --budget 1s", "knob 'drop_rate'",
         "drop_rate is a probability in [0, 1)"),
    case("config_negative_classes", "compare cfg_negative_classes.yaml", "num_classes must be >= 0", "-5"),
    case("budget_infinite", "search --space tiny.yaml --budget 1e309ms --study tiny",
         "budget must be a finite time, got '1e309ms'"),
    case("train_lr_nan", "train mobilevit_xxs --lr nan", "'--lr'", "'nan' is not a finite number"),
    case("train_lr_inf", "train mobilevit_xxs --lr inf", "'--lr'", "'inf' is not a finite number"),
    case("train_cutmix_nan", "train mobilevit_xxs --cutmix nan", "'--cutmix'", "'nan' is not a finite number"),
    # runtimes and CUDA graphs (the latency issue): refused before anything is built or a study is touched
    case("backend_unknown", "compare mobilevit_xxs --backend tflite", "'--backend'", "'tflite' is not one of",
         "onnxruntime"),
    case("cuda_graph_on_cpu", "compare mobilevit_xxs --device cpu --cuda-graph", "--cuda-graph needs --device cuda"),
    case("search_cuda_graph_on_cpu", "search --space tiny.yaml --budget 1s --no-train --study tiny --device cpu "
         "--cuda-graph", "--cuda-graph needs --device cuda"),
    case("search_other_backend", "search --space tiny.yaml --budget 1s --no-train --study tiny --device cpu "
         "--backend compile", "study 'tiny' was created with backend='eager', this run has 'compile'"),
]


# ------------------------------------------------------------------------------ workspace
def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(path)


class _Evil:
    """Unpickling this would run os.system: the CIFAR reader must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def make_workspace(root: Path) -> None:
    for rel, text in TEXT_FILES.items():
        (root / rel).write_text(text)
    (root / "blocked").write_text("a file where a directory is needed\n")
    (root / "data" / "empty").mkdir(parents=True)
    for i in range(2):
        _png(root / "data" / "loose" / f"img{i}.png", 10 * i)
        for cls in ("cat", "dog"):
            _png(root / "data" / "few" / cls / f"{i}.png", 100 + i)
    for split, classes in (("train", ("cat", "dog")), ("val", ("cat", "bird"))):
        for cls in classes:
            _png(root / "data" / "split" / split / cls / "0.png", 50)
    evil = root / "data" / "evil"
    evil.mkdir(parents=True)
    for name in ("batches.meta", "data_batch_1", "test_batch"):
        (evil / name).write_bytes(pickle.dumps(_Evil()))


def run_cli(args: list[str] | tuple[str, ...], catch: bool = False):
    return CliRunner().invoke(main, list(args), prog_name="nasbench", catch_exceptions=catch)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the workspace and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def load_trials(root: Path, name: str = "tiny") -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/studies/nasbench.db").trials


def trial_count(root: Path, name: str = "tiny") -> int:
    return len(load_trials(root, name))


def timed_count(root: Path, name: str = "tiny") -> int:
    """Trials that --trials counts: a tiny space's sampler may also propose repeats (recorded, not counted)."""
    from nasbench.nas.study import timed_now

    return sum(timed_now(t) for t in load_trials(root, name))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_input")
    make_workspace(root)
    old = Path.cwd()
    os.chdir(root)
    try:
        res = run_cli([*TINY_SEARCH, "--trials", "2", "--no-presets"])
    finally:
        os.chdir(old)
    assert res.exit_code == 0, res.output
    assert (root / "reports" / "tiny" / "index.html").is_file() and timed_count(root) == 2
    return root


def output_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("c", [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)]
                                            if c.xfail else []) for c in CASES])
def test_bad_input(c: Case, workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    before, trials_before = snapshot(workspace), trial_count(workspace)
    res = run_cli(c.args)
    lines = output_lines(res.output)
    assert res.exit_code == c.exit_code, res.output
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and res.stdout.strip() == "", res.output  # on stderr only
    for word in c.words:
        assert word in lines[0]
    assert "Traceback" not in res.output and PASSWORD not in res.output
    after = snapshot(workspace)
    assert after == before  # no file written, changed or removed
    assert trial_count(workspace) == trials_before


@pytest.mark.parametrize("name", ["budget_no_unit", "resume_other_budget"])
def test_real_process_prints_one_line_on_stderr(name: str, workspace: Path) -> None:
    """A real process shows what the in-process runner hides (Python warnings): still one line on stderr."""
    c = next(c for c in CASES if c.name == name)
    before = snapshot(workspace)
    proc = subprocess.run([sys.executable, "-m", "nasbench.cli", *c.args], cwd=workspace, capture_output=True,
                          check=False, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stdout == ""
    lines = output_lines(proc.stderr)
    assert len(lines) == 1 and all(word in lines[0] for word in c.words), proc.stderr
    assert snapshot(workspace) == before


@pytest.mark.parametrize("imgsz_px", [7, 33])
def test_odd_imgsz_is_measured_not_refused(imgsz_px: int, tmp_path: Path) -> None:
    """No family needs a multiple of its stride: convs pad, MobileViT resizes to whole patches,
    GhostNetV3's DFC gate skips its half-resolution pooling on 1-px maps."""
    import pandas as pd

    res = run_cli(["compare", "mobilevit_xxs", "efficientvit_m0", "ghostnetv3_050", "--imgsz", str(imgsz_px),
                   "--device", "cpu",
                   "--runs", "1", "--warmup", "0", "--no-crosscheck", "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(frame["imgsz"]) == [imgsz_px] * 3 and (frame["macs"] > 0).all()


def test_every_preset_and_shipped_space_passes_the_type_checks() -> None:
    """The knob type checks behind config_bad_value_type and space_bad_choice_type refuse nothing valid."""
    from nasbench import zoo
    from nasbench.families.base import config_to_dict
    from nasbench.nas.space import resolve_space_arg

    for name, (fam, cfg) in zoo.all_presets().items():
        assert zoo.spec_from_mapping({"family": fam.name, **config_to_dict(cfg)}, name).config == cfg
    assert len(resolve_space_arg("all")) == len(list((REPO / "spaces").glob("*.yaml")))


# ------------------------------------------------------------------------------ security
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            yield node, node.func.value.id, node.func.attr


def unsafe_loads(source: str) -> list[str]:
    """Calls that could run code from a data file: yaml loaders other than safe_load, torch.load
    without weights_only=True, plain pickle loads (the CIFAR reader's restricted Unpickler is fine)."""
    found = []
    for node, module, attr in _calls(ast.parse(source)):
        if module == "yaml" and attr in ("load", "load_all", "unsafe_load", "unsafe_load_all", "full_load",
                                         "full_load_all"):
            found.append(f"line {node.lineno}: yaml.{attr}")
        if module == "torch" and attr == "load":
            weights_only = [k.value for k in node.keywords if k.arg == "weights_only"]
            if not (weights_only and isinstance(weights_only[0], ast.Constant) and weights_only[0].value is True):
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
        if module == "pickle" and attr in ("load", "loads"):
            found.append(f"line {node.lineno}: pickle.{attr}")
    return found


def test_unsafe_loads_are_detected() -> None:
    bad = ("import yaml, torch, pickle\nyaml.load(s)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "pickle.loads(b)\n")
    assert len(unsafe_loads(bad)) == 4
    assert unsafe_loads("yaml.safe_load(s)\ntorch.load(p, weights_only=True)\n") == []


# Each reads only the model its parent process pickled and piped to it, never a file.
PARENT_PIPE_ONLY = {"nasbench/metrics/compile_probe.py", "nasbench/metrics/isolation.py"}


def test_package_loads_data_safely() -> None:
    found = {str(p.relative_to(REPO)): unsafe_loads(p.read_text()) for p in sorted((REPO / "nasbench").rglob("*.py"))
             if str(p.relative_to(REPO)) not in PARENT_PIPE_ONLY}
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("command", ["compare", "train"])
def test_help_says_factory_files_are_executed(command: str) -> None:
    res = run_cli([command, "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    assert "factory file is executed" in text and "name only code you trust" in text


# ------------------------------------------------------------------------------ the table
def markdown_table(root: Path) -> str:
    """Run every case in ``root`` (a prepared workspace) and render docs/bad-input.md's table."""
    def code(text: str) -> str:  # messages may hold backticks and pipes
        return "`` " + text.replace(str(root) + "/", "").replace(str(REPO) + "/", "").replace("|", "\\|") + " ``"

    rows = ["| command | what the user sees (stderr) | exit | test |", "|---|---|---|---|"]
    os.chdir(root)
    for c in CASES:
        res = run_cli(c.args, catch=True)
        lines = output_lines(res.output)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            lines.append(f"Traceback … {type(res.exception).__name__}: {res.exception}")
        errors = [ln for ln in lines if ln.startswith("error: ")] or lines
        seen = code(" / ".join(errors))
        others = [ln.strip() for ln in lines if ln not in errors]
        if others:
            seen += f" **+ {len(others)} more line(s) before it:** {code(others[0][:90] + ' …')}"
        test = f"`test_bad_input[{c.name}]`" + (" (xfail)" if c.xfail else "")
        rows.append(f"| {code('nasbench ' + shlex.join(c.args))} | {seen} | {res.exit_code} | {test} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        make_workspace(Path(tmp))
        os.chdir(tmp)
        assert run_cli([*TINY_SEARCH, "--trials", "2", "--no-presets"]).exit_code == 0
        print(markdown_table(Path(tmp)))
