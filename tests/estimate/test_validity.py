"""The tau, matched-pair, error and leave-one-family-out computations on hand examples."""

from __future__ import annotations

import math

import pytest

from nasbench.estimate import validity as v
from nasbench.estimate.fitted import fit_linear


def test_kendall_tau_counts_concordant_minus_discordant() -> None:
    # 6 pairs, only (2, 3) swapped: (5 - 1) / 6
    assert v.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert v.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_tau_b_corrects_for_ties() -> None:
    # pairs: (0,1) tied in x only, (0,2) and (1,2) concordant -> 2 / sqrt((2 + 1) * 2)
    assert v.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(v.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_matched_cost_pairs_need_other_family_similar_macs_and_a_clear_gap() -> None:
    macs = [100, 140, 200, 100]
    truth = [70.0, 72.0, 75.0, 70.5]
    families = ["a", "b", "b", "a"]
    # (0,1): 1.4x, 2 points, a/b -> in. (0,2): 2x -> out. (0,3): same family -> out.
    # (1,3): 1.4x, 1.5 points -> in. (2,3): 2x -> out. (1,2): same family -> out.
    pairs = v.matched_cost_pairs(macs, truth, families)
    assert pairs == [(0, 1), (1, 3)]
    assert v.pairs_ordered_right([1, 2, 0, 0], truth, pairs) == 2
    assert v.pairs_ordered_right([2, 1, 0, 0], truth, pairs) == 1
    assert v.pairs_ordered_right([1, 1, 0, 1], truth, pairs) == 0  # ties are wrong
    assert v.matched_cost_pairs([100, 140], [70.0, 70.9], ["a", "b"]) == []  # gap below 1 point


def test_leave_one_family_out_never_sees_the_family_it_predicts() -> None:
    def fit_mean(_features, truth):
        mean = sum(truth) / len(truth)
        return lambda _f: mean

    pred = v.leave_one_family_out(fit_mean, [[0]] * 4, [1.0, 3.0, 5.0, 7.0], ["a", "a", "b", "c"])
    assert pred == pytest.approx([6.0, 6.0, 11 / 3, 3.0])


def test_validity_gathers_every_figure() -> None:
    est = [60.0, 71.0, 74.0, 69.0]
    truth = [70.0, 72.0, 75.0, 70.5]
    out = v.validity(est, truth, ["a", "b", "b", "a"], [100, 140, 200, 100], calibrated=True)
    assert out.n == 4 and out.pairs_total == 2 and out.pairs_right == 2
    assert out.mae == pytest.approx((10 + 1 + 1 + 1.5) / 4)
    assert v.validity(est, truth, ["a"] * 4, [1, 2, 3, 4], calibrated=False).mae is None


def test_within_family_tau_only_for_families_with_three_models() -> None:
    taus = v.within_family_tau([1, 2, 3, 5, 4], [1, 2, 3, 1, 2], ["a", "a", "a", "b", "b"])
    assert taus == {"a": pytest.approx(1.0)}


def test_linear_fit_recovers_a_line_and_standardises() -> None:
    rows = [{"x": x} for x in (1.0, 2.0, 3.0, 4.0)]
    line = fit_linear(rows, [2 * r["x"] + 1 for r in rows], ["x"], ridge=0.0)
    assert line.predict({"x": 10.0}) == pytest.approx(21.0)
    assert line.mean == (2.5,) and line.n == 4
    shrunk = fit_linear(rows, [2 * r["x"] + 1 for r in rows], ["x"], ridge=100.0)
    assert abs(shrunk.predict({"x": 10.0}) - 6.0) < abs(line.predict({"x": 10.0}) - 6.0)  # toward the mean (6)
