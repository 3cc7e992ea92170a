"""Study -> DataFrames: states, Pareto front, CSV round trip, importances, storage errors."""

from __future__ import annotations

import io
import json

import optuna
import pandas as pd
import pytest

from nasbench.errors import UserError
from nasbench.report.schema import column_doc
from nasbench.report.study import MIN_TRIALS_FOR_IMPORTANCE, load_study_data, pareto_numbers, report_dirname
from nasbench.storage import _scrub, mask_url, open_study
from tests.report.synthetic import make_study


def brute_force_front(trials: pd.DataFrame) -> set[tuple[float, float]]:
    """(latency, value) points no other candidate beats on both axes, by definition."""
    cand = trials[(trials["state"] == "complete") & trials["feasible"] & trials["duplicate_of"].isna()]
    pts = list(zip(cand["latency_ms"].astype(float), cand["value"].astype(float)))
    return {p for p in pts if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in pts)}


def test_every_trial_state_is_a_row(proxy_study):
    data = load_study_data(proxy_study)
    t = data.trials
    assert len(t) == len(proxy_study.trials) == data.counts["run"]
    assert set(t["state"]) == {"complete", "pruned", "failed"}
    c = data.counts
    assert c["complete"] == c["feasible"] + c["infeasible"] and c["infeasible"] > 0 and c["duplicates"] > 0
    assert c["run"] == c["complete"] + c["pruned"] + c["failed"]
    failed = t[t["state"] == "failed"]
    assert failed["latency_ms"].isna().all() and failed["reason"].str.startswith("RuntimeError").all()
    infeasible = t[(t["state"] == "complete") & ~t["feasible"]]
    assert infeasible["reason"].str.contains("> budget").all()
    assert (t["flops"].dropna() == 2 * t["macs"].dropna()).all()


def test_pareto_front_matches_the_definition(proxy_study, cost_study):
    for study in (proxy_study, cost_study):
        data = load_study_data(study, importances=False)
        front = set(zip(data.pareto["latency_ms"], data.pareto["value"]))
        assert front == brute_force_front(data.trials)
        assert data.pareto["feasible"].all() and (data.pareto["state"] == "complete").all()
        assert data.pareto["latency_ms"].is_monotonic_increasing and data.pareto["value"].is_monotonic_increasing
        assert set(data.configs) == set(data.pareto["trial"])


def test_pareto_ignores_duplicates_and_keeps_one_of_equal_points():
    frame = pd.DataFrame({
        "trial": [0, 1, 2, 3, 4], "state": ["complete"] * 5, "feasible": [True, True, True, False, True],
        "latency_ms": [10.0, 10.0, 5.0, 1.0, 4.0], "value": [50.0, 50.0, 40.0, 99.0, 45.0],
        "duplicate_of": [None, None, None, None, 0],
    })
    # 3 is infeasible, 4 is a duplicate; 0 and 1 tie: the earlier one stands for both.
    assert pareto_numbers(frame) == [2, 0]


def test_csv_round_trips_through_pandas(proxy_study):
    data = load_study_data(proxy_study, importances=False)
    back = pd.read_csv(io.StringIO(data.trials.to_csv(index=False)))
    assert list(back.columns) == list(data.trials.columns)
    for col in ("trial", "params", "macs", "flops", "latency_ms", "proxy_top1", "value", "duration_s"):
        assert pd.api.types.is_numeric_dtype(back[col]), col
        pd.testing.assert_series_equal(back[col].astype(float), data.trials[col].astype(float), check_names=False)
    assert back["feasible"].dtype == bool and back["pareto"].dtype == bool
    # List-valued knobs are JSON text, scalar knobs stay numbers.
    assert json.loads(back["knob_depths"].iloc[0]) == proxy_study.trials[0].user_attrs["config"]["depths"]
    assert pd.api.types.is_numeric_dtype(back["knob_width"])
    assert all(column_doc(c) for c in back.columns), [c for c in back.columns if not column_doc(c)]


def test_units_are_in_the_column_names(proxy_study):
    cols = set(load_study_data(proxy_study, importances=False).trials.columns)
    assert {"latency_ms", "latency_p10_ms", "params", "macs", "flops", "proxy_top1", "duration_s"} <= cols


def test_presets_and_baseline_frames(evil_detector_study):
    data = load_study_data(evil_detector_study, importances=False)
    assert list(data.presets["name"])[:2] == ["mobilevit_xxs", "mobilevit_xs"]
    assert data.baseline["name"].tolist() == ["rtdetr_l"]
    assert data.baseline["det_macs"].iloc[0] == 54_150_000_000
    assert data.pareto["det_latency_ms"].notna().all()


def test_importances_for_objective_and_latency(proxy_study):
    imp = load_study_data(proxy_study).importances
    assert set(imp.objective) == set(imp.latency) == {"family", "width", "depth", "heads", "ffn_ratio"}
    assert sum(imp.objective.values()) == pytest.approx(1.0) and sum(imp.latency.values()) == pytest.approx(1.0)
    assert not imp.note


def test_too_few_trials_for_importances_is_explained():
    study = make_study(MIN_TRIALS_FOR_IMPORTANCE - 4, name="tiny")
    imp = load_study_data(study).importances
    assert imp.objective == {} and imp.latency == {}
    assert "Not enough trials" in imp.note and str(MIN_TRIALS_FOR_IMPORTANCE) in imp.note


def test_empty_study_loads():
    study = optuna.create_study(study_name="empty", direction="maximize")
    data = load_study_data(study)
    assert len(data.trials) == 0 and data.pareto.empty and data.counts["run"] == 0


# ----------------------------------------------------------------------------- storage
def test_mask_url_hides_passwords_only():
    assert mask_url("postgresql://bob:s3cr@t@db.example/nas") == "postgresql://bob:***@db.example/nas"
    assert mask_url("postgresql+psycopg2://bob:pw@h:5432/d") == "postgresql+psycopg2://bob:***@h:5432/d"
    assert mask_url("sqlite:///studies/nasbench.db") == "sqlite:///studies/nasbench.db"
    assert mask_url("postgresql://bob@h/d") == "postgresql://bob@h/d"
    url = "postgresql://bob:hunter2@h/d"
    assert "hunter2" not in _scrub(f"could not connect to {url} (password hunter2 rejected)", url)


def test_mask_url_hides_passwords_given_as_query_parameters():
    url = "postgresql://u@host/db?sslmode=require&password=hunter2&application_name=nb"
    assert mask_url(url) == "postgresql://u@host/db?sslmode=require&password=***&application_name=nb"
    assert mask_url("postgresql://u@host/db?PASSWORD=x") == "postgresql://u@host/db?PASSWORD=***"
    assert "hunter2" not in _scrub("FATAL: password authentication failed (hunter2)", url)


def test_open_study_from_sqlite_and_closest_names(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    make_study(12, storage=url, name="mobilevit-cpu-30ms")
    make_study(12, storage=url, name="efficientvit-cuda-5ms")
    assert open_study("mobilevit-cpu-30ms", url).study_name == "mobilevit-cpu-30ms"
    with pytest.raises(UserError, match="did you mean mobilevit-cpu-30ms"):
        open_study("mobilevit-cpu-3Oms", url)
    with pytest.raises(UserError, match="no study 'zzz'"):
        open_study("zzz", url)


def test_open_study_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no study database at"):
        open_study("x", f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()  # never creates an empty database
    with pytest.raises(UserError, match="no journal storage file"):
        open_study("x", f"journal:{tmp_path}/missing.log")
    with pytest.raises(UserError) as err:
        open_study("x", "postgresql://bob:hunter2@127.0.0.1:1/nas")
    assert "hunter2" not in str(err.value) and "bob:***@" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="has no studies"):
        empty = f"sqlite:///{tmp_path}/empty.db"
        optuna.storages.RDBStorage(empty)
        open_study("x", empty)


def test_journal_storage(tmp_path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "j.log"
    make_study(12, storage=JournalStorage(JournalFileBackend(str(path))), name="j")
    assert len(open_study("j", f"journal:{path}").trials) == 12


def test_report_dirname_is_one_safe_path_component():
    assert report_dirname("mobilevit-cpu_30ms.v2") == "mobilevit-cpu_30ms.v2"
    for bad in ("../../etc", "a/b", "<script>x</script>", "..", "", "/abs"):
        name = report_dirname(bad)
        assert "/" not in name and not name.startswith(".") and name


def test_running_and_unmeasured_trials_do_not_break_the_report():
    from nasbench.report.study_html import render_study_html

    study = optuna.create_study(study_name="started", direction="maximize")
    study.ask()  # a search that has just begun: one RUNNING trial, nothing measured
    study.enqueue_trial({})  # and one queued for the next run
    data = load_study_data(study)
    assert data.counts["running"] == 1 and data.counts["queued"] == 1 and data.pareto.empty
    assert "no feasible completed trial yet" in render_study_html(data)
    grown = make_study(12, name="grown")
    grown.ask()
    assert load_study_data(grown).counts["running"] == 1


def test_surplus_trials_are_counted_apart_from_failures() -> None:
    """Slot-race losers of a multi-worker --max-total are FAIL in Optuna but not failures."""
    from nasbench.report.study import trial_counts

    frame = pd.DataFrame({
        "state": ["complete", "failed", "failed", "pruned"],
        "feasible": [True, False, False, False],
        "duplicate_of": [None, None, None, None],
        "reason": [None, "surplus: 9 other trials fill --max-total 9 (not run)", "RuntimeError: boom", "pruned"],
    })
    counts = trial_counts(frame)
    assert (counts["failed"], counts["surplus"], counts["complete"], counts["pruned"]) == (1, 1, 1, 1)


def test_report_dirname_is_one_to_one():
    """Data-loss row 3: names that clean to the same text must not share a report or export."""
    names = ["тест", "проба", "a/b", "a_b", "a b", "x" * 150, "x" * 151]
    dirs = [report_dirname(n) for n in names]
    assert len(set(dirs)) == len(names)
    assert report_dirname("a_b") == "a_b" and report_dirname("a/b").startswith("a_b-")
    assert all(len(d) <= 100 for d in dirs)


def test_latency_model_line_counts_skips_checks_and_error() -> None:
    from nasbench.report.study import latency_model_line

    frame = pd.DataFrame({
        "trial": [0, 1, 2, 3, 4], "latency_ms": [10.0, None, None, 50.0, 20.0],
        "feasible": [True, False, False, False, True],
        "pred_latency_ms": [None, 80.0, 90.0, 60.0, 22.0], "predicted_over": [False, True, True, False, False],
        "predicted_over_timed": [None, None, None, True, None], "pred_latency_error": [None, None, None, 0.2, 0.1],
    })
    assert latency_model_line(frame) == ("latency model: 2 candidate(s) predicted over budget and never timed; of 1 "
                                         "such timed anyway to check, 1 turned out infeasible; median error on the 2 "
                                         "predicted before timing 15% (p90 19%)")
    assert latency_model_line(frame.drop(columns=["pred_latency_ms"])) is None
