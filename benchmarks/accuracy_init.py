"""Does an estimator read the architecture, or the weights its author initialised it with?

Zero-cost scores are read from a freshly initialised model, and every family initialises
its own way (truncated normal 0.02 for transformer blocks, Kaiming fan-out for convs, …).
A user's copy of the same architecture may well be initialised differently. Here every
published preset is re-initialised with one family-free rule (``reinit_he``) and its
zero-cost signals are measured again; the cost signals do not depend on weights.

Two figures per fitted estimator (``init_section``):
- the shift of its estimate for a preset when only the initialisation changes (the fit
  itself stays the one on the presets as they are): what a user's re-initialised copy gets;
- its leave-one-family-out figures when the whole table is re-initialised: whether its
  validity comes from the architecture or from the families' initialisation conventions.

Used by ``accuracy_validity.py``; the signals are kept in
``benchmarks/results/accuracy_reinit_signals.json``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasbench import zoo
from nasbench.estimate import estimators as est
from nasbench.estimate.reference import REFERENCE_SEED, ReferenceRow, published_presets, reference_rows
from nasbench.estimate.signals import ZERO_COST_SIGNALS, measure_signals
from nasbench.estimate.zerocost import WEIGHT_LAYERS

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def reinit_he(model: nn.Module) -> nn.Module:
    """Every conv/linear weight (the layers the gradient scores read) He-normal (fan-in, ReLU
    gain), biases 0, norm layers 1/0.

    The most common initialisation of a hand-written PyTorch model; other parameters
    (position embeddings, layer scales, class tokens) keep the family's own values."""
    for module in model.modules():
        if isinstance(module, WEIGHT_LAYERS):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def reinit_signals(path: Path, log: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Zero-cost signals of every published preset after ``reinit_he`` (computed once, kept in ``path``)."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    for name in published_presets():
        if name in stored:
            continue
        log(f"re-initialised signals of {name}")
        spec = zoo.resolve(name)
        torch.manual_seed(REFERENCE_SEED)
        values, _seconds = measure_signals(reinit_he(spec.build()), spec.native_imgsz, ZERO_COST_SIGNALS)
        stored[name] = values
        path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    return stored


def _estimate_shift(candidate: est.FittedEstimator, built: list[ReferenceRow],
                    again: list[ReferenceRow]) -> tuple[float, float]:
    """Median and largest |estimate after re-init - estimate as built| over the presets, in points."""
    shifts = [abs(candidate.value_of(a.signals) - candidate.value_of(b.signals)) for b, a in zip(built, again)]
    return statistics.median(shifts), max(shifts)


def init_section(reinit: dict[str, dict[str, Any]]) -> list[str]:
    rows_built = list(reference_rows())
    rows_reinit = [replace(r, signals={**r.signals, **reinit[r.name]}) for r in rows_built]
    lines = ["## Architecture or initialisation?", "",
             "Every published preset re-initialised with one family-free rule (conv/linear weights He-normal "
             "fan-in, biases 0, norm layers 1/0; `benchmarks/accuracy_init.py`), its zero-cost signals measured "
             "again. Shift: how far a fit's estimate of a preset moves when only the initialisation changes (the "
             "fit stays the one on the presets as built), median and largest over the presets. The "
             "leave-one-family-out columns refit and score the whole table re-initialised.", "",
             "| fit | estimate shift, median / max (points) | LOFO tau as built | LOFO tau re-initialised | "
             "LOFO MAE as built | LOFO MAE re-initialised |",
             "|---|---:|---:|---:|---:|---:|"]
    steady = 0.0  # the largest median shift of a fit on a sign- or ratio-based score
    for candidate in est.FIT_CANDIDATES:
        built, again = est.estimator_validity(candidate, rows_built), est.estimator_validity(candidate, rows_reinit)
        median, largest = _estimate_shift(candidate, rows_built, rows_reinit)
        mark = "**" if candidate.name == est.DEFAULT_ESTIMATOR else ""
        lines.append(f"| {mark}{candidate.name}{mark} | {median:.2f} / {largest:.2f} | {built.tau:.3f} | "
                     f"{again.tau:.3f} | {built.mae:.2f} | {again.mae:.2f} |")
        if candidate.name == est.DEFAULT_ESTIMATOR:
            default = (median, largest, built, again)
        if {"zico", "naswot"} & set(candidate.signals):
            steady = max(steady, median)
    median, largest, built, again = default
    lines += ["", f"The default's estimate of the same architecture moves by {median:.2f} points (median; up to "
              f"{largest:.2f}) with the initialisation alone, and re-initialised its leave-one-family-out tau is "
              f"{again.tau:.3f} (as built: {built.tau:.3f}). Scores built from gradient magnitudes read the "
              "weights' scale, so part of what they add on this table is the families' initialisation "
              "conventions; the fits on sign- or ratio-based scores (NASWOT, ZiCo) move by a median of "
              f"{steady:.2f} points at most. So the default's estimate of a model outside the zoo also reads "
              "how that model was initialised."]
    return [*lines, ""]
