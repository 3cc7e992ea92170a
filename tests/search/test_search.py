"""The search loop end to end on tiny spaces: budget parsing, staging, duplicates,
resume, interruption, export -> compare round trip."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from nasbench.cli import main
from nasbench.errors import MeasureError, UserError
from nasbench.nas import study as st
from nasbench.nas.budget import parse_budget_ms, parse_count
from nasbench.nas.space import resolve_space_arg
from tests.helpers import TINY_SPACE


@pytest.mark.parametrize("text, ms", [("30ms", 30.0), ("30 ms", 30.0), ("0.03s", 30.0), ("30000us", 30.0),
                                      ("2.5ms", 2.5), ("1e1ms", 10.0)])
def test_budget_forms(text: str, ms: float) -> None:
    assert parse_budget_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["30", "ms", "-5ms", "0ms", "30 fps", "thirty ms", ""])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(UserError, match="30ms, 30 ms, 0.03s, 30000us"):
        parse_budget_ms(text)


def test_counts() -> None:
    assert parse_count("5M", "cap") == 5_000_000 and parse_count("500k", "cap") == 500_000
    assert parse_count("1.5G", "cap") == 1_500_000_000 and parse_count("1200", "cap") == 1200
    with pytest.raises(UserError, match="k/M/G"):
        parse_count("5 MB", "--max-params")


def write_space(tmp_path: Path, space: dict = TINY_SPACE) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def cli(tmp_path: Path, *args: str):
    storage = f"sqlite:///{tmp_path}/s.db"
    return CliRunner().invoke(main, ["search", "--device", "cpu", "--storage", storage, "--out", str(tmp_path / "rep"),
                                     *args], catch_exceptions=False)


def load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/s.db")


def test_cost_only_search_resume_and_report(tmp_path) -> None:
    space = write_space(tmp_path)
    args = ["--space", str(space), "--budget", "1s", "--trials", "3", "--no-train", "--study", "tiny", "--seed", "1",
            "--det-imgsz", "128"]
    res = cli(tmp_path, *args)
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "tiny")
    assert len(study.trials) == 3
    assert study.user_attrs["objective"] == "macs" and study.user_attrs["budget_ms"] == 1000.0
    first = study.trials[0]
    assert set(first.user_attrs["config"]) >= {"family", "stage_channels", "transformer_blocks"}
    assert first.user_attrs["row"]["macs"] == first.values[0]  # cost-only objective: capacity
    assert [r["name"] for r in study.user_attrs["presets"]] == ["mobilevit_xxs"]
    # The RT-DETR references: rtdetr_l's row and the Pareto set's detector columns, timed together.
    baseline = study.user_attrs["baseline"]
    assert baseline["name"] == "rtdetr_l" and baseline["det_params"] > 30e6 and baseline["det_macs_delta_pct"] == 0
    assert study.user_attrs["pareto_detector"] and all(
        d["det_macs"] > 0 for d in study.user_attrs["pareto_detector"].values())
    # Re-running the same command resumes: trials are added to the same study.
    res = cli(tmp_path, *args)
    assert res.exit_code == 0 and "3 earlier trial(s), resuming" in res.output
    # --trials counts candidates timed: in this tiny space the second run also meets repeats
    # of earlier configs, which are reused, recorded, and not counted.
    resumed = load(tmp_path, "tiny").trials
    assert sum(st.timed_now(t) for t in resumed) == 6 and "3 trial(s) this run" in res.output
    assert (len(resumed) > 6) == ("skipped untimed or repeated (recorded, not counted)" in res.output)
    assert all("duplicate_of" in t.user_attrs for t in resumed if not st.timed_now(t))
    frame = pd.read_csv(tmp_path / "rep" / "trials.csv")
    assert len(frame) == len(resumed) and {"latency_ms", "macs", "flops", "params"} <= set(frame.columns)


def test_infeasible_candidates_are_never_trained(tmp_path, monkeypatch) -> None:
    trained = []
    monkeypatch.setattr(st.Search, "train",
                        lambda self, spec, stop=None: trained.append(spec) or pytest.fail("trained"))
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1us", "--trials", "4", "--study", "nf",
              "--no-presets")
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "nf")
    assert trained == []
    assert all(not t.user_attrs["feasible"] and "never trained" in t.user_attrs["reason"] for t in study.trials)
    assert all(t.constraints["latency_over_budget_ms"] > 0 for t in study.trials)


def test_duplicate_configs_are_not_measured_twice(tmp_path, monkeypatch) -> None:
    one_point = dict(TINY_SPACE, knobs={"width": {"choices": [0.5], "scale": ["stage_channels"]}})
    calls = []
    real = st.Search.measure

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(st.Search, "measure", counting)
    res = cli(tmp_path, "--space", str(write_space(tmp_path, one_point)), "--budget", "1s", "--trials", "3",
              "--no-train", "--study", "dup", "--no-presets")
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "dup")
    assert len(calls) == 1
    # A repeat is not a timed trial: the run asks for more until its bound, 4 x --trials.
    assert [t.user_attrs.get("duplicate_of") for t in study.trials] == [None] + [0] * (st.asked_limit(3) - 1)
    assert study.trials[1].values == study.trials[0].values


def test_proxy_training_trials_and_presets(tmp_path) -> None:
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "2", "--study", "tr",
              "--objective", "proxy", "--proxy-steps", "6", "--proxy-imgsz", "16", "--proxy-batch", "16",
              "--det-imgsz", "128")
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "tr")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.user_attrs["feasible"] for t in done)
    assert all(0.0 <= t.value <= 100.0 and t.value == t.user_attrs["proxy_top1"] for t in done)
    assert study.user_attrs["proxy"]["synthetic"] is True
    # pruning points score the probe, the objective the whole val set (synthetic: 2,000 images)
    proxy = study.user_attrs["proxy"]
    assert (proxy["val_images"], proxy["probe_val_images"]) == (2000, st.PROBE_VAL_IMAGES) == (2000, 1000)
    for t in done:
        assert [p["val_images"] for p in t.user_attrs["proxy_curve"]] == [1000] * 5 + [2000]
    assert "proxy_top1" in study.user_attrs["presets"][0]
    assert "SYNTHETIC" in res.output


def test_an_infeasible_trial_of_an_estimate_study_is_valued_by_its_estimate(tmp_path) -> None:
    """GPSampler models the objective over every completed trial, over-budget ones included: their
    value must be an estimate too, not their MACs (millions of times any top-1)."""
    space = str(write_space(tmp_path))
    res = cli(tmp_path, "--space", space, "--budget", "0.01ms", "--trials", "2", "--study", "tight", "--sampler", "gp",
              "--det-imgsz", "128")
    assert res.exit_code == 0, res.output
    done = [t for t in load(tmp_path, "tight").trials if t.state.name == "COMPLETE"]
    assert len(done) >= 2 and not any(t.user_attrs["feasible"] for t in done)
    for t in done:
        assert t.values[0] == t.user_attrs["est_top1"] == t.user_attrs["est_value"]
        assert 30.0 < t.values[0] < 90.0 and t.values[0] != t.user_attrs["row"]["macs"]


def test_estimate_objective_is_stored_and_another_objective_is_refused(tmp_path) -> None:
    space = str(write_space(tmp_path))
    res = cli(tmp_path, "--space", space, "--budget", "1s", "--trials", "2", "--study", "est", "--det-imgsz", "128")
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "est")
    attrs = study.user_attrs
    assert (attrs["objective"], attrs["estimator"]) == ("estimate", "fit_cost_grad_norm")
    assert attrs["objective_label"] == "estimated ImageNet top-1 %"
    assert attrs["objective_validity"]["n"] == 31 and attrs["objective_validity"]["pairs_total"] == 35
    done = [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs["feasible"]]
    assert done and all(t.values[0] == t.user_attrs["est_top1"] for t in done)
    preset = attrs["presets"][0]
    assert preset["name"] == "mobilevit_xxs" and preset["published_top1"] == 69.0 and "est_top1" in preset
    assert "objective: fit_cost_grad_norm" in res.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "estimated ImageNet top-1 % (fit_cost_grad_norm)" in page  # the Pareto plot's axis
    assert "leave-one-family-out over 31 published presets" in page  # its validity, in the notes
    trials_csv = pd.read_csv(tmp_path / "rep" / "trials.csv")
    assert {"est_top1", "estimator"} <= set(trials_csv.columns)
    before = len(study.trials)
    for other in (["--objective", "macs"], ["--estimator", "zico"]):
        res = cli(tmp_path, "--space", space, "--budget", "1s", "--trials", "1", "--study", "est", *other)
        assert res.exit_code == 2 and "was created with" in res.output and "nothing was changed" in res.output
        assert res.output.count("\n") <= 2
    assert len(load(tmp_path, "est").trials) == before


def test_interrupt_records_the_trial_and_resumes(tmp_path, monkeypatch) -> None:
    real = st.Search.measure
    state = {"n": 0}

    def interrupt_second(self, *a, **k):
        state["n"] += 1
        if state["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(st.Search, "measure", interrupt_second)
    args = ["--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "3", "--no-train", "--study", "ki",
            "--no-presets"]
    res = cli(tmp_path, *args)
    assert res.exit_code == 130
    study = load(tmp_path, "ki")
    # the second measurement was interrupted; a repeat of the first config before it is reused, not measured
    *done, interrupted = study.trials
    assert interrupted.state.name == "FAIL" and "interrupted" in interrupted.user_attrs["reason"]
    assert all(t.state.name == "COMPLETE" for t in done) and sum(st.timed_now(t) for t in done) == 1
    monkeypatch.setattr(st.Search, "measure", real)
    assert cli(tmp_path, *args).exit_code == 0
    # 3 more timed trials; in this tiny space the sampler may also propose repeats, which are
    # recorded beside them and not counted
    resumed = load(tmp_path, "ki").trials
    assert sum(st.timed_now(t) for t in resumed) == 5
    assert all("duplicate_of" in t.user_attrs for t in resumed if not st.timed_now(t))


def test_export_then_compare_round_trip(tmp_path) -> None:
    assert cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "2", "--no-train",
               "--study", "ex", "--no-presets").exit_code == 0
    out = tmp_path / "configs"
    res = CliRunner().invoke(main, ["export", "ex", "--storage", f"sqlite:///{tmp_path}/s.db", "--trial", "0",
                                    "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (path,) = out.glob("*.yaml")
    study = load(tmp_path, "ex")
    res = CliRunner().invoke(main, ["compare", str(path), "--device", "cpu", "--imgsz", "64", "--runs", "2",
                                    "--warmup", "0", "--no-crosscheck", "--out", str(tmp_path / "cmp")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    row = pd.read_csv(tmp_path / "cmp" / "compare.csv").iloc[0]
    assert row["macs"] == study.trials[0].user_attrs["row"]["macs"]
    assert row["params"] == study.trials[0].user_attrs["row"]["params"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "mobilevit", "--budget", "30"], "cannot read budget '30'"),
        (["--space", "mobilevitt", "--budget", "30ms"], "unknown space 'mobilevitt'; did you mean mobilevit"),
        (["--space", "mobilevit", "--budget", "30ms", "--max-params", "lots"], "cannot read --max-params"),
        (["--space", "mobilevit", "--budget", "30ms", "--trials", "0"], "Invalid value for '--trials'"),
    ],
)
def test_bad_search_input(tmp_path, args, message: str) -> None:
    res = cli(tmp_path, *args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "s.db").exists()  # nothing created for bad input


def test_changed_budget_does_not_touch_an_existing_study(tmp_path) -> None:
    space = str(write_space(tmp_path))
    assert cli(tmp_path, "--space", space, "--budget", "1s", "--trials", "1", "--no-train", "--study", "b",
               "--no-presets").exit_code == 0
    res = cli(tmp_path, "--space", space, "--budget", "2s", "--trials", "1", "--no-train", "--study", "b")
    assert res.exit_code == 2 and "was created with budget_ms=1000.0" in res.output
    assert len(load(tmp_path, "b").trials) == 1


def test_detector_target_constrains_detector_latency(tmp_path) -> None:
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "100s", "--trials", "2", "--no-train",
              "--study", "det", "--target", "detector", "--det-imgsz", "128", "--no-presets")
    assert res.exit_code == 0, res.output
    study = load(tmp_path, "det")
    for t in study.trials:
        row = t.user_attrs["row"]
        assert row["det_params"] > row["params"] and row["det_macs"] > row["macs"] and row["det_latency_ms"] > 0
        assert t.constraints["latency_over_budget_ms"] == pytest.approx(row["det_latency_ms"] - 100_000)


def test_a_study_keeps_the_knob_encoding_it_was_made_with(tmp_path, monkeypatch) -> None:
    """A study asked with numeric choices as categoricals (as every study was before the
    index encoding) resumes with them; a new one is asked by index and records that first."""
    args = ["--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "2", "--no-train", "--no-presets"]
    monkeypatch.setattr(st, "KNOB_ENCODING", "value")
    assert cli(tmp_path, *args, "--study", "old").exit_code == 0
    monkeypatch.undo()
    res = cli(tmp_path, *args, "--study", "old")
    assert res.exit_code == 0 and "2 earlier trial(s), resuming" in res.output
    old = load(tmp_path, "old")
    assert old.user_attrs["knob_encoding"] == "value" and len(old.trials) >= 4
    assert all(isinstance(t.distributions["width"], optuna.distributions.CategoricalDistribution) for t in old.trials)
    assert cli(tmp_path, *args, "--study", "new").exit_code == 0
    new = load(tmp_path, "new")
    assert new.user_attrs["knob_encoding"] == "index"
    assert all(t.distributions["width"] == optuna.distributions.IntDistribution(0, 1) for t in new.trials)
    assert all(t.user_attrs["config"]["stage_channels"] for t in new.trials)
    # a study made before the encoding was recorded has attributes but none of it: "value"
    search = st.Search(resolve_space_arg(str(write_space(tmp_path))), st.SearchOptions(budget_ms=1000.0,
                                                                                       device="cpu"))
    legacy = optuna.create_study()
    legacy.set_user_attr("objective", "macs")
    search.use_study_encoding(legacy)
    assert search.knob_encoding == "value"
    search.use_study_encoding(optuna.create_study())  # a study whose creator has written nothing yet
    assert search.knob_encoding == "index"


@pytest.mark.parametrize("sampler", ["nsga2", "random", "gp", "tpe"])
def test_every_sampler_runs(tmp_path, sampler: str) -> None:
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "3", "--no-train",
              "--study", f"s-{sampler}", "--sampler", sampler, "--no-presets")
    assert res.exit_code == 0, res.output
    trials = load(tmp_path, f"s-{sampler}").trials  # 3 timed, and any repeats the tiny space made (not counted)
    assert all(t.state.name == "COMPLETE" for t in trials) and sum(st.timed_now(t) for t in trials) == 3
    assert f"; sampler {sampler}, seed 0" in res.output


def test_the_default_sampler_says_what_auto_picked(tmp_path) -> None:
    space = str(write_space(tmp_path))
    alone = cli(tmp_path, "--space", space, "--budget", "1s", "--trials", "1", "--no-train", "--study", "a",
                "--no-presets")
    assert alone.exit_code == 0, alone.output
    assert "; sampler auto (gp, tpe after 200 trials), seed 0" in alone.output
    shared = cli(tmp_path, "--space", space, "--budget", "1s", "--trials", "1", "--no-train", "--study", "b",
                 "--no-presets", "--max-total", "1")
    assert shared.exit_code == 0, shared.output
    assert "; sampler auto (tpe), seed 0" in shared.output  # several workers may share it: TPE's constant liar


def test_proxy_training_does_not_depend_on_trial_order() -> None:
    """Each candidate starts from the same seeded weights, whatever was trained before it."""
    from nasbench import zoo

    search = st.Search([], st.SearchOptions(budget_ms=1e3, device="cpu", objective="proxy", proxy_steps=2,
                                            proxy_batch=8, proxy_imgsz=16, seed=3))
    first = search.train(zoo.resolve("mobilevit_xxs"))
    search.train(zoo.resolve("efficientvit_m0"))
    again = search.train(zoo.resolve("mobilevit_xxs"))
    assert (first.top1, first.val_loss) == (again.top1, again.val_loss)


def test_a_torn_journal_tail_is_repaired_before_the_search_resumes(tmp_path) -> None:
    """Data-loss row 2: a write cut short by a full disk must not make the study unreadable."""
    journal = tmp_path / "j.log"
    args = ["--space", str(write_space(tmp_path)), "--budget", "1s", "--no-train", "--study", "j", "--no-presets",
            "--storage", f"journal:{journal}"]
    first = CliRunner().invoke(main, ["search", "--device", "cpu", "--out", str(tmp_path / "rep"), *args,
                                      "--trials", "2"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    whole = journal.read_bytes()
    torn = b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "user_attr": {"row": {"na'  # no newline
    with journal.open("ab") as f:
        f.write(torn)
    res = CliRunner().invoke(main, ["search", "--device", "cpu", "--out", str(tmp_path / "rep"), *args,
                                    "--trials", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"removed a torn last record of {len(torn)} bytes" in res.output
    backups = list(tmp_path.glob("j.log.torn-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == whole + torn
    study = optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    # 3 timed trials; the sampler may also propose repeats in this tiny space (recorded, not counted)
    assert sum(st.timed_now(t) for t in study.trials) == 3 and journal.read_bytes().startswith(whole)
    assert all("duplicate_of" in t.user_attrs for t in study.trials if not st.timed_now(t))


def test_builder_error_fails_the_trial_and_the_search_goes_on(tmp_path, monkeypatch) -> None:
    """A config the family's builder rejects (past every check) is a FAIL with the builder's reason,
    one line in Optuna's log (no traceback), and the other trials still run."""
    import dataclasses

    from nasbench import zoo

    real = zoo.all_families()["mobilevit"]
    def build(cfg):
        if cfg.stage_channels[-1] < real.presets["mobilevit_xxs"].stage_channels[-1]:
            raise ValueError("channels the builder cannot split")
        return real.build(cfg)
    families = dict(zoo.all_families(), mobilevit=dataclasses.replace(real, build=build))
    monkeypatch.setattr(zoo, "all_families", lambda: families)
    log = io.StringIO()
    handler = logging.StreamHandler(log)  # beside Optuna's own stderr handler, filtered the same way
    logging.getLogger("optuna").addHandler(handler)
    try:
        res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "6", "--no-train",
                  "--study", "be", "--no-presets", "--seed", "1", "--start", "sampler", "--sampler", "random")
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert res.exit_code == 0, res.output
    trials = load(tmp_path, "be").trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # width 0.5 fails to build, width 1.0 is measured; repeats are recorded beside them, not counted
    assert sum(st.timed_now(t) for t in trials) == 6 and failed and done
    assert all(t.user_attrs["reason"] == f"cannot build t{t.number:04d} (mobilevit): ValueError: channels the "
               "builder cannot split" for t in failed)
    # the params hold the indices of width's choices [0.5, 1.0]
    assert all(t.params["width"] == 0 for t in failed) and all(t.params["width"] == 1 for t in done)
    lines = log.getvalue().splitlines()
    assert len([ln for ln in lines if "failed with parameters" in ln]) == len(failed)
    assert "Traceback" not in log.getvalue() and "Traceback" not in res.output


def test_study_name_with_markup_searches_resumes_and_reports(tmp_path) -> None:
    args = ["--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "1", "--no-train",
            "--study", "x[/]y[v2]", "--no-presets"]
    assert cli(tmp_path, *args).exit_code == 0
    res = cli(tmp_path, *args)
    assert res.exit_code == 0, res.output
    assert "study x[/]y[v2] in" in res.output and "1 earlier trial(s), resuming" in res.output
    trials = load(tmp_path, "x[/]y[v2]").trials
    # The resumed sampler's seed depends on the process (see joining_seed), so its first proposal can
    # repeat trial 0 (1 in 16 configs of the tiny space): a repeat is recorded but not counted.
    timed = [t for t in trials if st.timed_now(t)]
    assert len(timed) == 2 and all("duplicate_of" in t.user_attrs for t in trials if not st.timed_now(t))
    assert (tmp_path / "rep" / "index.html").is_file()


def test_a_worker_joining_while_the_creator_writes_attrs_is_not_refused() -> None:
    """Workers start together: one creates the study and writes its attrs one by one; another
    that loads it in between sees only some of them. Absent keys are not a mismatch."""
    study = optuna.create_study(study_name="race", storage=optuna.storages.InMemoryStorage())
    study.set_user_attr("budget_ms", 1000.0)  # the creator has written only this so far
    attrs = {k: None for k in st.RESUME_KEYS} | {"budget_ms": 1000.0, "objective": "macs"}
    st.check_resume(study, attrs)  # no objective stored yet: nothing to compare
    study.set_user_attr("objective", "estimate")
    with pytest.raises(UserError, match="created with objective='estimate', this run has 'macs'"):
        st.check_resume(study, attrs)


def test_a_storage_lost_mid_search_ends_with_one_line(tmp_path, monkeypatch) -> None:
    """Row 10: the database goes away during trial 2; the command ends with one line (the driver's
    cause, what is kept, how to resume) and exit 2, the finished trials kept, none left RUNNING."""
    import sqlalchemy.exc

    real = st.Search._objective

    def objective(self, trial):
        if trial.number == 2:
            cause = sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from cause
        return real(self, trial)

    monkeypatch.setattr(st.Search, "_objective", objective)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "5", "--no-train",
              "--study", "lost", "--no-presets")
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.output
    assert errors[0].startswith(f"error: lost the storage sqlite:///{tmp_path}/s.db during the search: ")
    assert "server closed the connection" in errors[0] and "re-run the same command to resume" in errors[0]
    assert [t.state.name for t in load(tmp_path, "lost").trials] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_a_database_the_disk_could_not_hold_is_not_left_empty(tmp_path, monkeypatch) -> None:
    """Row 17: a full disk while the study database is created leaves no 0-byte .db behind."""
    import sqlite3

    from nasbench.nas import command

    def full_disk(url, heartbeat_s):
        Path(url[len("sqlite:///"):]).touch()  # what SQLite leaves when the first page cannot be written
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(command, "make_storage", full_disk)
    res = CliRunner().invoke(main, ["search", "--space", str(write_space(tmp_path)), "--budget", "1s", "--no-train",
                                    "--storage", f"sqlite:///{tmp_path}/new.db", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and res.output.strip() == (f"error: cannot open storage sqlite:///{tmp_path}/new.db: "
                                                         "database or disk is full"), res.output
    assert not (tmp_path / "new.db").exists()


def test_a_config_over_a_cap_is_never_built(tmp_path, monkeypatch) -> None:
    """With --max-params, a candidate over the cap is counted on the meta device and pruned
    before a single weight is allocated (the reliability issue's resource-bounds row)."""
    monkeypatch.setattr(st, "prepare", lambda *a, **k: pytest.fail("built for real"))
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "3", "--no-train",
              "--max-params", "100k", "--study", "caps", "--no-presets")
    assert res.exit_code == 0, res.output
    trials = load(tmp_path, "caps").trials
    # None is timed, so the run ends at its bound on candidates asked for (4 x --trials).
    assert len(trials) == st.asked_limit(3) and all(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    for t in trials:
        assert t.user_attrs["reason"].startswith("params_over_cap +") and "never built" in t.user_attrs["reason"]
        assert t.constraints["params_over_cap"] > 0


def _unstable_after(stable_from: int):
    """A Search.time stand-in: the first ``stable_from`` timings are unstable (busy machine)."""
    import dataclasses

    from nasbench.metrics.latency import time_models

    calls = []

    def timed(self, model, label, imgsz, plan):
        real = time_models({label: model}, imgsz, device=self.device, threads=1, plan=plan)[label]
        if plan.runs == 1:  # the one-run probe for far-over-budget candidates: not a timing that is judged
            return real
        calls.append(label)
        if len(calls) <= stable_from:
            return dataclasses.replace(real, unstable_reason="other processes kept 1.00 CPU cores busy")
        return dataclasses.replace(real, unstable_reason="")
    return timed, calls


def test_an_unstable_timing_is_retimed_and_never_judged_on(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(st, "RETIME_PAUSE_S", 0.0)
    timed, calls = _unstable_after(stable_from=99)  # never stable
    monkeypatch.setattr(st.Search, "time", timed)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "1", "--no-train",
              "--study", "busy", "--no-presets", "--start", "sampler", "--unstable-timing", "fail")
    assert res.exit_code == 0, res.output
    trial = load(tmp_path, "busy").trials[0]
    assert len(calls) == 1 + st.RETIMES  # timed, then re-timed twice
    assert trial.state == optuna.trial.TrialState.FAIL and "row" not in trial.user_attrs
    assert trial.user_attrs["reason"].startswith("timing unstable in 3 attempts (other processes kept 1.00 CPU")


def test_a_retimed_candidate_keeps_every_attempt_in_its_record(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(st, "RETIME_PAUSE_S", 0.0)
    timed, calls = _unstable_after(stable_from=1)  # the second timing is stable
    monkeypatch.setattr(st.Search, "time", timed)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "1", "--no-train",
              "--study", "calm", "--no-presets", "--start", "sampler", "--unstable-timing", "fail")
    assert res.exit_code == 0, res.output
    row = load(tmp_path, "calm").trials[0].user_attrs["row"]
    assert len(calls) == 2 and row["timing_unstable"] is False
    first, second = row["timing_attempts"].split("; ")
    assert first.endswith("(other processes kept 1.00 CPU cores busy)") and second.endswith("(stable)")


def test_accepting_unstable_timings_judges_them_and_marks_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(st, "RETIME_PAUSE_S", 0.0)
    timed, _calls = _unstable_after(stable_from=99)
    monkeypatch.setattr(st.Search, "time", timed)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "1", "--no-train",
              "--study", "acc", "--no-presets", "--start", "sampler", "--unstable-timing", "accept")
    assert res.exit_code == 0, res.output
    trial = load(tmp_path, "acc").trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["feasible"]
    assert trial.user_attrs["row"]["timing_unstable"] is True


def test_backend_is_stored_named_and_another_backend_is_refused(tmp_path, monkeypatch) -> None:
    from nasbench.metrics import backends

    # eager under another name, so the test needs neither ONNX nor a compiler
    monkeypatch.setitem(backends._BUILDERS, "compile", lambda model, x, threads: (lambda: model(x), "stand-in"))
    space = write_space(tmp_path)
    res = cli(tmp_path, "--space", str(space), "--budget", "1s", "--trials", "1", "--no-train", "--no-presets",
              "--backend", "compile")
    assert res.exit_code == 0, res.output
    name = "tiny-backbone-cpu-64px-1000ms-compile-costonly"
    study = load(tmp_path, name)
    assert study.user_attrs["backend"] == "compile" and study.trials[0].user_attrs["row"]["backend"] == "compile"
    res = cli(tmp_path, "--space", str(space), "--budget", "1s", "--trials", "1", "--no-train", "--no-presets",
              "--study", name)
    assert res.exit_code == 2
    assert f"study '{name}' was created with backend='compile', this run has 'eager'" in res.output
    assert len(load(tmp_path, name).trials) == 1


def test_a_backend_that_cannot_run_a_candidate_fails_that_trial(tmp_path, monkeypatch) -> None:
    from nasbench.metrics import backends

    def refuse(model, x, threads):
        raise backends.BackendError("onnxruntime failed: an op the exporter does not know")

    monkeypatch.setitem(backends._BUILDERS, "onnxruntime", refuse)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "2", "--no-train",
              "--study", "ort", "--no-presets", "--backend", "onnxruntime")
    assert res.exit_code == 0, res.output
    trials = load(tmp_path, "ort").trials
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all(t.user_attrs["reason"] == "onnxruntime failed: an op the exporter does not know" for t in trials)


def test_a_preset_that_cannot_be_timed_costs_one_line_not_the_report(tmp_path, monkeypatch) -> None:
    """A preset measured at the end (a busy moment, a backend that cannot run it) is recorded
    with its reason; the search still writes its report and exits 0."""
    real = st.Search.measure_reusing

    def unstable_presets(self, spec, label, imgsz, reject_over_ms=None, use_cache=True):
        if label == "mobilevit_xxs":
            raise MeasureError("timing unstable in 3 attempts (spread (p90 - p10) / median 31%)")
        return real(self, spec, label, imgsz, reject_over_ms, use_cache)

    monkeypatch.setattr(st.Search, "measure_reusing", unstable_presets)
    res = cli(tmp_path, "--space", str(write_space(tmp_path)), "--budget", "1s", "--trials", "1", "--no-train",
              "--study", "late", "--start", "sampler")
    assert res.exit_code == 0, res.output
    assert "preset mobilevit_xxs not measured: timing unstable in 3 attempts" in res.output
    presets = load(tmp_path, "late").user_attrs["presets"]
    assert presets == [{"name": "mobilevit_xxs", "family": "mobilevit", "feasible": False,
                        "reason": "timing unstable in 3 attempts (spread (p90 - p10) / median 31%)"}]
    assert (tmp_path / "rep" / "index.html").is_file()
