"""Estimators: the stored reference table, out-of-sample fits, the default, user factories."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from nasbench import zoo
from nasbench.errors import UserError
from nasbench.estimate import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    estimate_model,
    estimate_spec,
    estimator_validity,
    get_estimator,
)
from nasbench.estimate import estimators as est
from nasbench.estimate.reference import published_presets, reference_rows, signal_row
from nasbench.estimate.signals import COST_SIGNALS, SIGNALS


def test_every_published_preset_is_in_the_reference_table() -> None:
    rows = reference_rows()
    assert [r.name for r in rows] == published_presets()
    assert len(rows) == 31
    assert all(set(SIGNALS) <= set(r.signals) for r in rows)
    assert {r.name: r.top1 for r in rows}["volo_d1"] == 84.2  # the truth comes from the family module


def test_stored_signals_match_a_fresh_computation() -> None:
    stored = next(r for r in reference_rows() if r.name == "efficientvit_m0")
    values, _seconds = signal_row("efficientvit_m0")
    for name in SIGNALS:
        # ZiCo divides by a standard deviation over only 2 batches, which amplifies the rounding
        # differences between CPU kernels: 0.26% between the Intel Xeon that wrote the table and
        # an AMD EPYC. The estimate built on these signals moves far less (checked below).
        tol = 0.0 if name in COST_SIGNALS else 1e-2 if name == "zico" else 1e-3
        assert values[name] == pytest.approx(stored.signals[name], rel=tol, abs=1e-9), name
    default = get_estimator("default").excluding("efficientvit")
    assert default.value_of(values) == pytest.approx(default.value_of(stored.signals), abs=0.01)


def test_the_default_is_the_lowest_leave_one_family_out_error_among_the_candidates() -> None:
    assert est.select_default() == DEFAULT_ESTIMATOR
    assert get_estimator("default").name == DEFAULT_ESTIMATOR


def test_fitted_figures_are_out_of_sample(monkeypatch) -> None:
    """Changing one family's published numbers changes no prediction of that family."""
    rows = list(reference_rows())
    shifted = [dataclasses.replace(r, top1=r.top1 - 10.0) if r.family == "volo" else r for r in rows]
    default = get_estimator("default")
    before = dict(zip([r.name for r in rows], default.reference_values(rows)))
    after = dict(zip([r.name for r in rows], default.reference_values(shifted)))
    for r in rows:
        if r.family == "volo":
            assert after[r.name] == pytest.approx(before[r.name])
        else:
            assert after[r.name] != pytest.approx(before[r.name])


def test_a_preset_estimate_leaves_its_own_family_out() -> None:
    spec = zoo.resolve("mobilevit_xxs")
    default = get_estimator("default")
    result = estimate_spec(spec, spec.native_imgsz, default)
    stored = next(r for r in reference_rows() if r.name == "mobilevit_xxs")
    expected = default.excluding("mobilevit").value_of(stored.signals)
    assert result.top1 == pytest.approx(expected, abs=0.05)
    assert result.top1 != pytest.approx(default.value_of(stored.signals), abs=1e-3)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, 2, 1, groups=16), nn.BatchNorm2d(32), nn.GELU())
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def test_every_estimator_answers_for_a_model_that_is_in_no_table() -> None:
    for name, estimator in ESTIMATORS.items():
        torch.manual_seed(0)
        result = estimate_model(TinyNet(), 64, estimator)
        assert result.estimator == name and math.isfinite(result.value) and result.seconds >= 0
        assert (result.top1 is not None) == estimator.calibrated
    default = estimate_model(TinyNet(), 64)
    # 1,194 parameters at 64 px: far below every preset, so the fit extrapolates and says so; never below chance
    assert 0.1 <= default.top1 < 60.0
    assert set(default.details) == {*get_estimator("default").signals, "outside_reference"}
    assert default.details["outside_reference"] >= 2


def test_the_estimate_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    net = TinyNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    estimate_model(net, 64, "zico")
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_unknown_estimator_names_the_choices() -> None:
    with pytest.raises(UserError, match="unknown estimator 'zicoo'; did you mean zico"):
        get_estimator("zicoo")


def test_validity_of_cost_baselines_matches_the_issue() -> None:
    macs = estimator_validity(ESTIMATORS["macs"])
    assert (macs.n, macs.pairs_total, macs.pairs_right) == (31, 35, 18)
    assert macs.tau == pytest.approx(0.71, abs=0.005)


def test_the_packaged_heldout_figures_follow_from_the_stored_classic_signals() -> None:
    """What `compare --estimate` shows for a model outside the zoo is recomputed here from the
    held-out models' stored signals and published top-1, for every registered estimator."""
    import json
    from pathlib import Path

    from benchmarks.heldout.classic import PUBLISHED_TOP1
    from nasbench.estimate import heldout_validity
    from nasbench.estimate.validity import kendall_tau, mean_abs_error

    stored = json.loads((Path(__file__).parents[2] / "benchmarks/results/accuracy_heldout_signals.json").read_text())
    names = sorted(PUBLISHED_TOP1)
    assert sorted(stored) == names and len(names) == 30
    truth = [PUBLISHED_TOP1[n].top1 for n in names]
    for name, estimator in ESTIMATORS.items():
        values = [estimator.value_of(stored[n]["signals"]) for n in names]
        packaged = heldout_validity(name)
        assert packaged["models"] == 30
        assert packaged["tau"] == pytest.approx(kendall_tau(values, truth), abs=1e-9)
        if estimator.calibrated:
            assert packaged["mae"] == pytest.approx(mean_abs_error(values, truth), abs=1e-9)
        else:
            assert packaged["mae"] is None


def test_the_typical_error_is_the_out_of_sample_error_that_applies_to_the_model() -> None:
    from nasbench.estimate import heldout_validity, typical_error_points, validity_line

    default = get_estimator("default")
    in_zoo = typical_error_points(default, "mobilevit")
    outside = typical_error_points(default, None)
    assert in_zoo == estimator_validity(default).mae and in_zoo < 1.5
    assert outside == heldout_validity(default.name)["mae"] and outside > 3 * in_zoo  # far outside the fit's data
    assert typical_error_points("zico", None) is None  # a ranking has no error in points
    assert f"on 30 classic ImageNet models outside the zoo: Kendall tau {heldout_validity(default.name)['tau']:.2f}" \
        in validity_line(default)


def test_reinit_he_sets_the_family_free_initialisation_and_keeps_other_parameters() -> None:
    from benchmarks.accuracy_init import reinit_he

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 256, 3), nn.BatchNorm2d(256), nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 4096))
    net[1].weight.data.fill_(0.5)
    net[3].bias.data.fill_(0.3)
    token = nn.Parameter(torch.full((1, 8), 0.02))
    net.register_parameter("token", token)
    reinit_he(net)
    # He-normal fan-in: std sqrt(2 / fan_in); fan_in 64 * 3 * 3 = 576 for the conv, 8 for the linear.
    assert net[0].weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.02)
    assert net[4].weight.std().item() == pytest.approx(math.sqrt(2 / 8), rel=0.02)
    assert not net[0].bias.any() and not net[4].bias.any()
    assert torch.equal(net[1].weight, torch.ones(256)) and torch.equal(net[3].bias, torch.zeros(8))
    assert torch.equal(net.token, torch.full((1, 8), 0.02))  # not a conv/linear/norm weight: left as built


def test_stored_reinit_signals_match_a_fresh_computation(tmp_path) -> None:
    """The re-initialised table behind the validity report's 'Architecture or initialisation?' section."""
    import json
    from pathlib import Path

    from benchmarks.accuracy_init import reinit_he
    from nasbench.estimate.reference import REFERENCE_SEED
    from nasbench.estimate.signals import ZERO_COST_SIGNALS, measure_signals

    stored = json.loads((Path(__file__).parents[2] / "benchmarks/results/accuracy_reinit_signals.json").read_text())
    assert sorted(stored) == sorted(published_presets())
    spec = zoo.resolve("efficientvit_m0")
    torch.manual_seed(REFERENCE_SEED)
    values, _seconds = measure_signals(reinit_he(spec.build()), spec.native_imgsz, ZERO_COST_SIGNALS)
    for name in ZERO_COST_SIGNALS:
        # 1%: the table was written on an Intel Xeon; on an AMD EPYC grad_norm came out 0.2% apart (the CPUs'
        # kernels round differently through the re-initialised layers)
        assert values[name] == pytest.approx(stored["efficientvit_m0"][name], rel=1e-2), name
    built = next(r for r in reference_rows() if r.name == "efficientvit_m0").signals
    assert values["grad_norm"] > built["grad_norm"] + 2  # He init's larger weights: gradients e^2-fold larger


def test_new_recipe_numbers_are_for_held_out_architectures_and_above_the_old_recipe() -> None:
    from benchmarks.heldout.classic import FACTORIES, PUBLISHED_TOP1, PUBLISHED_TOP1_NEW_RECIPE

    assert len(PUBLISHED_TOP1_NEW_RECIPE) == 7 and set(PUBLISHED_TOP1_NEW_RECIPE) <= set(FACTORIES)
    for name, new in PUBLISHED_TOP1_NEW_RECIPE.items():
        assert 0.2 < new.top1 - PUBLISHED_TOP1[name].top1 < 5.0, name  # torchvision's documented gains: 0.3-4.7
    assert PUBLISHED_TOP1_NEW_RECIPE["resnet50"].top1 == 80.858
