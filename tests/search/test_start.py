"""A search starts at the presets, aims them at the budget, reuses their measurements, and
skips candidates its latency model puts over budget (recording the prediction)."""

from __future__ import annotations

import csv
import json
import math

import optuna
import pytest

from nasbench import zoo
from nasbench.errors import UserError
from nasbench.nas import measurements
from nasbench.nas import study as st
from nasbench.nas.latency_model import LatencyModel
from nasbench.nas.space import KNOB_ENCODINGS, candidate_from_values, resolve_space_arg, sample
from nasbench.nas.start import (
    AIM_FRACTION,
    EXPONENT_RANGE,
    aimed_values,
    config_distance,
    enqueue_presets,
    latency_exponent,
    optuna_params,
    preset_macs,
    preset_start_trials,
    project,
    start_limit,
    values_from_params,
    width_settings,
)
from nasbench.report.study import trial_counts, trials_frame
from tests.helpers import TINY_SPACE
from tests.search.test_search import cli, load, write_space

# TINY_SPACE, but wide enough that mobilevit_xxs (blocks 2, 4, 3) is a point of it
EXACT_SPACE = dict(TINY_SPACE, knobs={"width": {"choices": [0.5, 1.0], "scale": ["stage_channels"]},
                                      "transformer_blocks": {"int": [1, 4], "per_stage": 3}})


def test_presets_project_onto_their_spaces() -> None:
    spaces = {s.name: s for s in resolve_space_arg("all")}
    for name in ("ghostnetv3_050", "ghostnetv3_160", "mobilevit_s", "efficientvit_m0", "volo_d1", "hgnetv2_l"):
        space = spaces[zoo.resolve(name).family]
        values, exact = project(space, zoo.resolve(name).config)
        assert exact, name
        assert config_distance(candidate_from_values(space, values).config, zoo.resolve(name).config) == 0.0
    # EfficientViT-M1 has 3 heads, which the space leaves out: the nearest point, not the preset
    values, exact = project(spaces["efficientvit"], zoo.resolve("efficientvit_m1").config)
    assert not exact and set(values["heads"]) <= {2, 4}


def test_start_trials_take_spaces_in_turn_and_name_params_as_sample_does() -> None:
    spaces = resolve_space_arg("all")
    starts = preset_start_trials(spaces, limit=len(spaces) + 1)
    families = [zoo.resolve(s.user_attrs["preset"]).family for s in starts]
    assert families[:len(spaces)] == [s.name for s in spaces]  # one of each space first
    assert families[-1] == spaces[0].name and len(starts) == len(spaces) + 1
    first = starts[0]
    assert first.params["family"] == spaces[0].name
    assert all(k == "family" or k.startswith(f"{spaces[0].name}.") for k in first.params)
    study = optuna.create_study()
    study.enqueue_trial(first.params)
    trial = study.ask()
    cand = sample(trial, spaces[0], f"{spaces[0].name}.")
    # each enqueued value lies in the distribution sample asks with (the family is Search.sample's to ask)
    assert trial.params == {k: v for k, v in first.params.items() if k != "family"}
    assert optuna_params(spaces[0], values_from_params(spaces[0], cand.params), f"{spaces[0].name}.", True) \
        == first.params


@pytest.mark.parametrize("encoding", KNOB_ENCODINGS)
def test_enqueued_presets_sample_back_to_their_projected_configs(encoding: str) -> None:
    space = resolve_space_arg("mobilevit")[0]
    study = optuna.create_study()
    assert enqueue_presets(study, [space], 3, encoding) == 3
    for _ in range(3):
        trial = study.ask()
        cand = sample(trial, space, encoding=encoding)
        nearest, _ = project(space, zoo.resolve(trial.user_attrs["preset"]).config)
        assert cand.config == candidate_from_values(space, nearest).config
        width = trial.distributions["width"]
        assert isinstance(width, optuna.distributions.IntDistribution if encoding == "index"
                          else optuna.distributions.CategoricalDistribution)


def test_a_cross_family_start_covers_every_family() -> None:
    """A tenth of the trials, at least one, and at least one preset per space when there are several."""
    assert [start_limit(t) for t in (1, 10, 11, 30)] == [1, 1, 2, 3]
    spaces = resolve_space_arg("all")
    assert len(spaces) == 7 and start_limit(30, len(spaces)) == 7 and start_limit(100, len(spaces)) == 10
    starts = preset_start_trials(spaces, start_limit(30, len(spaces)))
    assert sorted(zoo.resolve(s.user_attrs["preset"]).family for s in starts) == sorted(s.name for s in spaces)


def test_the_aimed_width_is_the_widest_whose_scaled_latency_fits(tmp_path) -> None:
    space = resolve_space_arg(str(write_space(tmp_path, EXACT_SPACE)))[0]
    values, _ = project(space, zoo.resolve("mobilevit_xxs").config)
    macs = {0.5: 300, 1.0: 1000}

    def macs_of(config) -> int:
        return macs[0.5 if config.stage_channels[0] < zoo.resolve("mobilevit_xxs").config.stage_channels[0] else 1.0]

    # measured 20 ms at 1000 MACs: width 0.5 scales to 6 ms
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=10.0)["width"] == 0.5
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=6.0 / AIM_FRACTION - 0.01) is None  # none fits
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=100.0) is None  # already the widest


def test_the_latency_exponent_is_the_log_log_slope_of_two_timings() -> None:
    assert latency_exponent((1000, 20.0), (500, 10.0)) == pytest.approx(1.0)
    assert latency_exponent((1000, 20.0), (250, 10.0)) == pytest.approx(0.5)  # 4x MACs, 2x time
    assert latency_exponent((1000, 20.0), (100, 16.0)) == EXPONENT_RANGE[0]  # 10x MACs, 1.25x time: e 0.097
    assert latency_exponent((1000, 20.0), (250, 21.0)) == 1.0  # timing noise: smaller but slower, no slope
    assert latency_exponent((101_000_000, 8.1), (79_000_000, 10.7)) == 1.0  # the M0 aim this guards against
    assert latency_exponent((1000, 20.0), (999, 5.0)) == EXPONENT_RANGE[1]
    assert latency_exponent((1000, 20.0), (1000, 12.0)) == 1.0  # no slope to read


def test_the_aim_follows_the_exponent(tmp_path) -> None:
    space = resolve_space_arg(str(write_space(tmp_path, EXACT_SPACE)))[0]
    values, _ = project(space, zoo.resolve("mobilevit_xxs").config)

    def macs_of(config) -> int:
        return 300 if config.stage_channels[0] < zoo.resolve("mobilevit_xxs").config.stage_channels[0] else 1000

    # 20 ms at 1000 MACs, budget 10 ms: in proportion, 460 MACs may run; with latency ~ MACs^0.5
    # only 1000 * (9.2 / 20)^2 = 212, so width 0.5 (300 MACs) no longer fits
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=10.0, exponent=1.0)["width"] == 0.5
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=10.0, exponent=0.5) is None
    assert aimed_values(space, values, macs_of, 20.0, 1000, budget_ms=14.0, exponent=0.5)["width"] == 0.5  # 424


def test_an_aimed_version_outside_the_window_is_aimed_again_along_its_secant(tmp_path, monkeypatch) -> None:
    """Latency here grows as MACs^0.5, as an overhead-bound model's does: the first aim, in
    proportion to MACs, lands over the budget, so that version is aimed once more along the
    slope its timing and the preset's show, and lands inside."""
    width = {"choices": [0.25, 0.5, 0.75, 1.0], "scale": ["stage_channels", "transformer_dims", "ffn_dims"]}
    spec = dict(EXACT_SPACE, knobs=dict(EXACT_SPACE["knobs"], width=width))  # MACs x0.16, 0.33, 0.70, 1
    path = write_space(tmp_path, spec)
    space = resolve_space_arg(str(path))[0]
    base_macs = preset_macs(space, "mobilevit_xxs")
    real = st.Search.measure

    def measure(self, model_spec, *args, **kwargs):
        row, _ = real(self, model_spec, *args, **kwargs)
        row["latency_ms"] = 20.0 * math.sqrt(row["macs"] / base_macs)
        return row, False

    monkeypatch.setattr(st.Search, "measure", measure)
    monkeypatch.setattr(st, "detector_references", lambda *a, **k: None)
    res = cli(tmp_path, "--space", str(path), "--budget", "11ms", "--trials", "3", "--no-train", "--study", "s",
              "--det-imgsz", "128")
    assert res.exit_code == 0, res.output
    preset, first, second = load(tmp_path, "s").trials[:3]
    assert preset.user_attrs["row"]["latency_ms"] == pytest.approx(20.0)
    macs = [t.user_attrs["row"]["macs"] for t in (preset, first, second)]
    ms = [t.user_attrs["row"]["latency_ms"] for t in (preset, first, second)]
    # round 1: the most MACs within 0.92 * 11 / 20 of the preset's (width 0.5); it runs over 11 ms
    assert first.user_attrs["aim_round"] == 1 and first.user_attrs["aim_exponent"] == 1.0
    assert macs[1] <= AIM_FRACTION * 11.0 / 20.0 * macs[0] and ms[1] > 11.0
    # round 2: along the slope through both timings (0.5), from the round-1 point
    assert second.user_attrs["aim_round"] == 2 and second.user_attrs["aimed_from"] == "mobilevit_xxs"
    assert second.user_attrs["aim_exponent"] == pytest.approx(0.5, abs=1e-4)
    assert second.user_attrs["aimed_from_point"] == [macs[1], ms[1]]
    assert macs[2] <= macs[1] * (AIM_FRACTION * 11.0 / ms[1]) ** 2 and ms[2] <= AIM_FRACTION * 11.0
    assert second.user_attrs["feasible"] is True
    assert [t.user_attrs.get("aim_round") for t in load(tmp_path, "s").trials].count(2) == 1  # no third round
    with open(next((tmp_path / "rep").rglob("trials.csv")), newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["start"], r["aimed_from"], r["aim_round"]) for r in table[:3]] == [
        ("preset", "", ""), ("aimed", "mobilevit_xxs", "1"), ("aimed", "mobilevit_xxs", "2")]
    # a run that ends with the round-1 version queues no second aim: --trials 2 leaves 2 trials
    res = cli(tmp_path, "--space", str(path), "--budget", "11ms", "--trials", "2", "--no-train", "--study", "t",
              "--det-imgsz", "128")
    assert res.exit_code == 0, res.output
    assert [t.state for t in load(tmp_path, "t").trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert "queued" not in res.output


def test_a_space_without_a_width_knob_is_aimed_by_scaling_every_stage() -> None:
    """EfficientViT has per-stage widths only: all stages scale by one factor, snapped to the
    choices, and the ordered list is bisected (a count costs about a second)."""
    space = resolve_space_arg("efficientvit")[0]
    values, _ = project(space, zoo.resolve("efficientvit_m4").config)  # widths (128, 256, 384)
    settings, ordered_by_macs = width_settings(space, values)
    assert ordered_by_macs and {"embed_dims", "key_dims"} == set(settings[0])
    assert {"embed_dims": (128, 256, 384), "key_dims": (16, 16, 16)} in settings  # factor 1
    assert settings[0]["embed_dims"] == (32, 64, 96) and settings[-1]["embed_dims"] == (384, 384, 384)
    calls = []

    def macs_of(config) -> int:  # stand-in cost that grows with every width
        calls.append(config)
        return sum(config.embed_dims) + sum(config.key_dims)

    measured = sum((128, 256, 384)) + 48
    # 40 ms measured; at 25 ms the scaled cost may be 0.92 * 25 / 40 of the measured one
    aimed = aimed_values(space, values, macs_of, 40.0, measured, budget_ms=25.0)
    fitting = [st for st in settings
               if sum(st["embed_dims"]) + sum(st["key_dims"]) <= AIM_FRACTION * 25.0 / 40.0 * measured]
    assert (aimed["embed_dims"], aimed["key_dims"]) == (fitting[-1]["embed_dims"], fitting[-1]["key_dims"])
    assert aimed["depths"] == values["depths"] and aimed["heads"] == values["heads"]  # only widths move
    assert len(calls) <= len(settings).bit_length()
    assert aimed_values(space, values, macs_of, 40.0, measured, budget_ms=40.0 / AIM_FRACTION) is None  # itself


def test_presets_start_the_search_and_are_not_measured_twice(tmp_path, monkeypatch) -> None:
    calls = []
    real = st.Search.measure
    monkeypatch.setattr(st.Search, "measure", lambda self, spec, *a, **k: calls.append(spec.name) or real(
        self, spec, *a, **k))
    monkeypatch.setattr(st, "detector_references", lambda *a, **k: None)  # not what this test is about (25 s)
    space = write_space(tmp_path, EXACT_SPACE)
    args = ["--space", str(space), "--budget", "1s", "--trials", "2", "--no-train", "--det-imgsz", "128"]
    res = cli(tmp_path, *args, "--study", "a")
    assert res.exit_code == 0, res.output
    first = load(tmp_path, "a").trials[0]
    assert first.user_attrs["start"] == "preset" and first.user_attrs["preset"] == "mobilevit_xxs"
    assert first.user_attrs["preset_exact"] is True and first.user_attrs["measured_from_cache"] is False
    # the preset was timed once, as trial 0; the reference row at the end is that trial's
    assert calls.count("t0000") == 1 and "mobilevit_xxs" not in calls
    presets = load(tmp_path, "a").user_attrs["presets"]
    assert presets[0]["name"] == "mobilevit_xxs" and presets[0]["from_trial"] == 0
    assert presets[0]["latency_ms"] == first.user_attrs["row"]["latency_ms"]
    # another study with the same settings reads the preset from the cross-study cache
    calls.clear()
    res = cli(tmp_path, *args, "--study", "b")
    assert res.exit_code == 0, res.output
    again = load(tmp_path, "b").trials[0]
    assert again.user_attrs["measured_from_cache"] is True and "t0000" not in calls
    assert again.user_attrs["row"]["latency_ms"] == first.user_attrs["row"]["latency_ms"]
    # resuming keeps the history and enqueues nothing again
    history = [(t.number, t.params, t.values) for t in load(tmp_path, "a").trials]
    res = cli(tmp_path, *args, "--study", "a")
    assert res.exit_code == 0, res.output
    resumed = load(tmp_path, "a").trials
    # --trials counts timed trials: a sampled repeat of an earlier config (the sampler may propose
    # one in this 128-point space, depending on the timings) is recorded beside them, uncounted
    assert sum(1 for t in resumed if st.timed_now(t)) == 4
    assert sum(1 for t in resumed if t.user_attrs.get("start") == "preset") == 1
    assert [(t.number, t.params, t.values) for t in resumed[:len(history)]] == history and len(history) == 2


def test_a_candidate_predicted_over_budget_is_recorded_infeasible_and_never_built(tmp_path, monkeypatch) -> None:
    built = []
    real = st.Search.measure
    monkeypatch.setattr(st.Search, "measure", lambda self, spec, *a, **k: built.append(spec.name) or real(
        self, spec, *a, **k))
    slow = LatencyModel(weights=(0.0, 0.0, 0.0, 0.0, 0.0, 5000.0), points=9, loo_errors=(0.05,) * 9)
    monkeypatch.setattr(st.Search, "latency_model", lambda self, trials: slow)  # 5 s for anything
    res = cli(tmp_path, "--space", str(write_space(tmp_path, EXACT_SPACE)), "--budget", "1s", "--trials", "1",
              "--no-train", "--study", "p", "--no-presets", "--start", "sampler")
    assert res.exit_code == 0, res.output
    trials = load(tmp_path, "p").trials
    # --trials 1 counts the one candidate timed; the three skipped before it are recorded, not counted.
    assert len(trials) == 4
    assert all(t.user_attrs["pred_latency_ms"] == 5000.0 and t.user_attrs["predicted_over"] for t in trials)
    skipped = [t for t in trials if "row" not in t.user_attrs]
    assert len(skipped) == 3 and all("predicted over budget: 5000.0 ms" in t.user_attrs["reason"] for t in skipped)
    assert all(t.constraints["latency_over_budget_ms"] == 4000.0 for t in skipped)
    # completed infeasible, valued like a timed one (MACs counted on the meta device, the predicted
    # latency), so a sampler that models completed trials only (GPSampler) learns from them too
    assert all(t.state == optuna.trial.TrialState.COMPLETE and not t.user_attrs["feasible"] for t in skipped)
    assert all(t.values[0] > 1e6 and t.values[1] == 5000.0 for t in skipped)
    counts = trial_counts(trials_frame(trials))
    assert (counts["predicted_over"], counts["complete"], counts["infeasible"], counts["pruned"]) == (3, 1, 0, 0)
    assert "3 predicted over budget" in res.output
    timed = [t for t in trials if t.user_attrs.get("predicted_over_timed")]  # every 4th checks the model
    assert [t.number for t in timed] == [3] and built == ["t0003"]
    row = timed[0].user_attrs["row"]
    assert timed[0].user_attrs["pred_latency_error"] == pytest.approx(abs(5000.0 - row["latency_ms"])
                                                                      / row["latency_ms"])
    assert trials[0].user_attrs["latency_model"] == {"points": 9, "loo_median_error": 0.05, "margin": 0.1}


def test_the_cache_survives_a_damaged_file(tmp_path) -> None:
    measurements.store("k", {"latency_ms": 1.5})
    assert measurements.lookup("k") == {"latency_ms": 1.5}
    path = measurements.cache_dir() / measurements.CACHE_FILE
    assert json.loads(path.read_text())["rows"]["k"] == {"latency_ms": 1.5}
    path.write_text("{not json")
    assert measurements.lookup("k") is None
    measurements.store("k2", {"latency_ms": 2.0})
    assert measurements.lookup("k2") == {"latency_ms": 2.0}


def test_cost_only_studies_are_two_objective_and_old_single_objective_ones_still_resume(tmp_path) -> None:
    space = write_space(tmp_path, EXACT_SPACE)
    args = ["--space", str(space), "--budget", "1s", "--trials", "2", "--no-train", "--no-presets"]
    assert cli(tmp_path, *args, "--study", "two").exit_code == 0
    study = load(tmp_path, "two")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for t in study.trials:  # (MACs, latency): the report's two axes
        assert t.values == [t.user_attrs["row"]["macs"], t.user_attrs["row"]["latency_ms"]]
    # a study made before (one direction) keeps it: the trials return the objective alone
    optuna.create_study(study_name="old", storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    res = cli(tmp_path, *args, "--study", "old")
    assert res.exit_code == 0, res.output
    old = load(tmp_path, "old")
    assert len(old.directions) == 1 and all(t.values == [t.user_attrs["row"]["macs"]] for t in old.trials)


def test_proxy_studies_stay_single_objective_and_hyperband_halves_over_the_steps() -> None:
    assert st.study_directions("proxy") == ["maximize"]  # pruning needs one objective
    assert st.study_directions("estimate") == st.study_directions("macs") == ["maximize", "minimize"]
    pruner = st.make_pruner(120, "hyperband")
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert isinstance(st.make_pruner(120), optuna.pruners.MedianPruner)
    with pytest.raises(UserError, match="unknown pruner 'asha' \\(use median, hyperband\\)"):
        st.make_pruner(120, "asha")
