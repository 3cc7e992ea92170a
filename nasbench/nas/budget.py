"""Parsing of the budget and cap strings users type: ``30ms``, ``0.03s``, ``5M``, ``500M``."""

from __future__ import annotations

import math
import re

from nasbench.errors import UserError

_TIME_UNITS_MS = {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us|µs)\s*$")
_COUNT_SUFFIX = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKMGB]?)\s*$")

BUDGET_FORMS = "30ms, 30 ms, 0.03s, 30000us"


def parse_budget_ms(text: str) -> float:
    """A latency budget in milliseconds; a unit is required (a bare number is ambiguous)."""
    m = _TIME.match(str(text))
    if not m:
        raise UserError(f"cannot read budget '{text}': use a positive time with a unit, e.g. {BUDGET_FORMS}")
    value = float(m.group(1)) * _TIME_UNITS_MS[m.group(2)]
    if not math.isfinite(value):  # 1e309 parses as inf: every candidate would be "within budget"
        raise UserError(f"budget must be a finite time, got '{text}' (e.g. {BUDGET_FORMS})")
    if value <= 0:
        raise UserError(f"budget must be positive, got '{text}' (e.g. {BUDGET_FORMS})")
    return value


def parse_count(text: str, what: str) -> int:
    """A count such as 5M, 500k, 1.5G or 1200000."""
    m = _COUNT.match(str(text))
    if not m:
        raise UserError(f"cannot read {what} '{text}': use a number with an optional k/M/G suffix, e.g. 5M, 500M")
    number = float(m.group(1)) * _COUNT_SUFFIX[m.group(2)]
    if not math.isfinite(number):
        raise UserError(f"{what} must be a finite number, got '{text}'")
    value = int(round(number))
    if value <= 0:
        raise UserError(f"{what} must be positive, got '{text}'")
    return value


def format_ms(ms: float) -> str:
    """Budget as it appears in study names: 30ms, 2.5ms."""
    return f"{ms:g}ms"
