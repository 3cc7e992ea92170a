"""The reference table: every signal of every preset that has a published top-1.

Fitted estimators are fitted on it and rank averages rank against it, so it is data in
the package (``reference_signals.json``), written by ``benchmarks/accuracy_validity.py
--write-reference`` from the code in this package (same inputs, same seeds). The
published numbers themselves are not in that file: they come from the family modules
(``Family.published``) when the table is loaded, so there is one copy of the truth.
A test recomputes a cheap preset's row and compares it with the stored one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from nasbench import zoo
from nasbench.estimate.signals import SIGNALS, measure_signals

REFERENCE_FILE = "reference_signals.json"
REFERENCE_SEED = 0  # initial weights of every preset in the table (torch.manual_seed before building)


@dataclass(frozen=True)
class ReferenceRow:
    name: str
    family: str
    imgsz: int
    top1: float  # published, from the family module
    signals: dict[str, float]
    seconds: dict[str, float]  # time each signal took when the table was written


def published_presets() -> list[str]:
    """Every preset with a published top-1, in zoo order."""
    return [name for name, (fam, _cfg) in zoo.all_presets().items() if name in fam.published]


def signal_row(name: str, names: Sequence[str] = SIGNALS) -> tuple[dict[str, float], dict[str, float]]:
    """All signals of one preset, built with the reference seed at its native size."""
    spec = zoo.resolve(name)
    torch.manual_seed(REFERENCE_SEED)
    model = spec.build()
    return measure_signals(model, spec.native_imgsz, names)


def write_reference(path: Path, names: Sequence[str], log: Callable[[str], None] = print,
                    meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute and write the table for ``names`` (the caller writes atomically elsewhere if it must)."""
    rows = {}
    for name in names:
        log(f"signals of {name}")
        values, seconds = signal_row(name)
        rows[name] = {"signals": values, "seconds": seconds}
    data = {"meta": dict(meta or {}, seed=REFERENCE_SEED, torch=torch.__version__), "rows": rows}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def _read_stored() -> dict[str, Any]:
    return json.loads(resources.files("nasbench.estimate").joinpath(REFERENCE_FILE).read_text())


@lru_cache(maxsize=1)
def reference_rows() -> tuple[ReferenceRow, ...]:
    """The stored table joined with the published numbers of the family modules."""
    stored = _read_stored()["rows"]
    presets = zoo.all_presets()
    rows = []
    for name in published_presets():
        if name not in stored:
            continue  # a preset added after the table was written: re-run the benchmark
        fam, _cfg = presets[name]
        rows.append(ReferenceRow(name, fam.name, fam.native_imgsz, fam.published[name].top1,
                                 dict(stored[name]["signals"]), dict(stored[name]["seconds"])))
    return tuple(rows)


def reference_meta() -> dict[str, Any]:
    return dict(_read_stored()["meta"])
