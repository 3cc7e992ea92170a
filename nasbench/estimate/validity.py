"""How well an accuracy estimate orders and predicts real (published) top-1: pure functions.

Definitions used by the benchmark, the reports and the tests alike:
- Kendall tau-b between estimate and truth (ties in either count as neither concordant
  nor discordant, with the tau-b correction).
- Matched-cost pairs: two models of different families whose MACs are within
  ``MATCHED_MACS_RATIO`` of each other and whose true top-1 differ by at least
  ``MATCHED_MIN_GAP`` points: the decisions a latency-budgeted search makes. A pair is
  ordered right when the estimate puts the truly better model strictly higher.
- Leave-one-family-out: a fitted estimator predicts each family from a fit on the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MATCHED_MACS_RATIO = 1.5
MATCHED_MIN_GAP = 1.0  # top-1 points
MIN_FAMILY_SIZE = 3  # within-family tau only where a family has this many published models


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (nan when either is constant)."""
    if len(x) != len(y):
        raise ValueError("kendall_tau needs two sequences of the same length")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


def within_family_tau(est: Sequence[float], truth: Sequence[float], families: Sequence[str],
                      min_size: int = MIN_FAMILY_SIZE) -> dict[str, float]:
    """tau inside each family with at least ``min_size`` models."""
    out = {}
    for fam in sorted(set(families)):
        idx = [i for i, f in enumerate(families) if f == fam]
        if len(idx) >= min_size:
            out[fam] = kendall_tau([est[i] for i in idx], [truth[i] for i in idx])
    return out


def matched_cost_pairs(macs: Sequence[float], truth: Sequence[float], families: Sequence[str],
                       ratio: float = MATCHED_MACS_RATIO, min_gap: float = MATCHED_MIN_GAP) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, of different families, similar MACs and a clear true gap."""
    pairs = []
    for i in range(len(macs)):
        for j in range(i + 1, len(macs)):
            similar = max(macs[i], macs[j]) <= ratio * min(macs[i], macs[j])
            if families[i] != families[j] and similar and abs(truth[i] - truth[j]) >= min_gap:
                pairs.append((i, j))
    return pairs


def pairs_ordered_right(est: Sequence[float], truth: Sequence[float], pairs: Sequence[tuple[int, int]]) -> int:
    """How many pairs the estimate orders as the truth does (a tie in the estimate is wrong)."""
    return sum(1 for i, j in pairs if (est[i] - est[j]) * (truth[i] - truth[j]) > 0)


def mean_abs_error(est: Sequence[float], truth: Sequence[float]) -> float:
    return sum(abs(e - t) for e, t in zip(est, truth)) / len(truth)


# A fit takes (features of the training models, their truth) and returns a predictor.
Fit = Callable[[Sequence[Sequence[float]], Sequence[float]], Callable[[Sequence[float]], float]]


def leave_one_family_out(fit: Fit, features: Sequence[Sequence[float]], truth: Sequence[float],
                         families: Sequence[str]) -> list[float]:
    """Each model's prediction from a fit on every other family's models."""
    predictions = [float("nan")] * len(truth)
    for fam in sorted(set(families)):
        train = [i for i, f in enumerate(families) if f != fam]
        predict = fit([features[i] for i in train], [truth[i] for i in train])
        for i, f in enumerate(families):
            if f == fam:
                predictions[i] = predict(features[i])
    return predictions


@dataclass(frozen=True)
class Validity:
    """The figures every validity table reports for one estimator."""

    n: int
    tau: float
    tau_by_family: dict[str, float]
    pairs_right: int
    pairs_total: int
    mae: float | None  # top-1 points; None for estimators that only rank

    @property
    def pairs_share(self) -> float:
        return self.pairs_right / self.pairs_total if self.pairs_total else float("nan")

    @property
    def min_family_tau(self) -> float:
        return min(self.tau_by_family.values(), default=float("nan"))


def validity(est: Sequence[float], truth: Sequence[float], families: Sequence[str], macs: Sequence[float],
             calibrated: bool) -> Validity:
    """All figures of one estimate against the truth (``calibrated``: the estimate is in top-1 points)."""
    pairs = matched_cost_pairs(macs, truth, families)
    return Validity(n=len(truth), tau=kendall_tau(est, truth), tau_by_family=within_family_tau(est, truth, families),
                    pairs_right=pairs_ordered_right(est, truth, pairs), pairs_total=len(pairs),
                    mae=mean_abs_error(est, truth) if calibrated else None)
