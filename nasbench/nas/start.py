"""Start where the answers are: a space's named presets as a study's first trials.

Each preset is projected onto the space (the knob values whose config is closest to the
preset's; "exact" when equal), enqueued as a trial, and measured like any other. Once a
preset trial is timed, a width-scaled version of it aimed at the budget is enqueued
(the space's width knobs set so that MACs, scaled from the preset's measured latency,
land just under the budget). Latency rarely grows in proportion to MACs (small models are
overhead-bound: on a 2-core CPU EfficientViT-M4 has 3.8x M0's MACs and takes 1.7x its time), so
an aimed version timed outside AIM_WINDOW of the budget is aimed once more, along the slope of
log latency against log MACs that its own timing and its preset's show (a secant step). Both
kinds give the sampler feasible points near the budget boundary from the first trials on,
which is where a latency-constrained optimum lies.
Everything here is generic over the space file: no family-specific code.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import count_cost
from nasbench.nas.space import KNOB_ENCODING, Knob, Space, candidate_from_values, ordered, param_value

START_ATTR = "start"  # trial user attribute: "preset" | "aimed"
AIM_FRACTION = 0.92  # aim the scaled version a little under the budget: timing spreads by a few %
AIM_WINDOW = (0.8, 1.0)  # of the budget: an aimed version timed outside it is aimed again
MAX_AIM_ROUNDS = 2  # the preset's aim, then at most one secant step
EXPONENT_RANGE = (0.25, 1.5)  # latency ~ MACs^e along a width line; clipped: two noisy timings make the slope
MAX_AIM_CANDIDATES = 64
_SWEEPS = 4
_FLOAT_GRID = 9


@dataclass(frozen=True)
class StartTrial:
    """One trial to enqueue: Optuna params (with the study's prefixes) and its attributes."""

    params: dict[str, Any]
    user_attrs: dict[str, Any]


# ----------------------------------------------------------------------------- projection
def knob_domain(knob: Knob) -> list[Any]:
    """Every value a knob can take (floats without a step: a grid over the range)."""
    if knob.kind == "choices":
        return list(knob.domain)
    lo, hi = knob.domain
    if knob.kind == "int":
        return list(range(int(lo), int(hi) + 1, int(knob.step or 1)))
    if knob.step:
        count = int(round((hi - lo) / knob.step))
        return [round(lo + i * knob.step, 10) for i in range(count + 1)]
    if knob.log:
        return [lo * (hi / lo) ** (i / (_FLOAT_GRID - 1)) for i in range(_FLOAT_GRID)]
    return [lo + (hi - lo) * i / (_FLOAT_GRID - 1) for i in range(_FLOAT_GRID)]


def _flat(v: Any) -> list[Any]:
    if isinstance(v, (tuple, list)):
        return [x for item in v for x in _flat(item)]
    return [v]


def value_distance(a: Any, b: Any) -> float:
    """0 when equal; |log ratio| summed element-wise for positive numbers; 1 per other mismatch."""
    fa, fb = _flat(a), _flat(b)
    if len(fa) != len(fb):
        return 10.0 + abs(len(fa) - len(fb))
    total = 0.0
    for x, y in zip(fa, fb):
        if x == y:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (x, y))
        total += abs(math.log(x / y)) if numeric else 1.0
    return total


def config_distance(config: Any, target: Any) -> float:
    return sum(value_distance(getattr(config, f.name), getattr(target, f.name)) for f in dataclasses.fields(target))


def _slots(space: Space) -> list[tuple[Knob, int | None]]:
    """(knob, stage index) for every independently chosen value."""
    return [(k, i) for k in space.knobs for i in (range(k.per_stage) if k.per_stage else [None])]


def _with(values: dict[str, Any], knob: Knob, index: int | None, v: Any) -> dict[str, Any]:
    out = dict(values)
    if index is None:
        out[knob.name] = v
    else:
        stages = list(out[knob.name])
        stages[index] = v
        out[knob.name] = tuple(stages)
    return out


def project(space: Space, target: Any) -> tuple[dict[str, Any], bool]:
    """Knob values whose config is closest to ``target`` (coordinate descent; valid configs
    preferred), and whether it reproduces ``target`` exactly."""
    def cost(values: dict[str, Any]) -> float:
        cand = candidate_from_values(space, values)
        return config_distance(cand.config, target) + (1000.0 if cand.violations else 0.0)

    domains = {k.name: knob_domain(k) for k in space.knobs}
    values = {k.name: (tuple([domains[k.name][len(domains[k.name]) // 2]] * k.per_stage) if k.per_stage
                       else domains[k.name][len(domains[k.name]) // 2]) for k in space.knobs}
    best = cost(values)
    for _ in range(_SWEEPS):
        improved = False
        for knob, index in _slots(space):
            for v in domains[knob.name]:
                trial_values = _with(values, knob, index, v)
                c = cost(trial_values)
                if c < best - 1e-12:
                    values, best, improved = trial_values, c, True
        if not improved:
            break
    return values, best == 0.0


def optuna_params(space: Space, values: dict[str, Any], prefix: str, multi: bool,
                  encoding: str = KNOB_ENCODING) -> dict[str, Any]:
    """Knob values -> the params (names and encoded values) ``sample`` asks Optuna for."""
    params: dict[str, Any] = {"family": space.name} if multi else {}
    for knob in space.knobs:
        if knob.per_stage:
            params.update({f"{prefix}{knob.name}_{i}": param_value(knob, v, encoding)
                           for i, v in enumerate(values[knob.name])})
        else:
            params[f"{prefix}{knob.name}"] = param_value(knob, values[knob.name], encoding)
    return params


def values_from_params(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``sample``'s flattening (a candidate's params: values, without the study prefix)."""
    return {k.name: (tuple(params[f"{k.name}_{i}"] for i in range(k.per_stage)) if k.per_stage else params[k.name])
            for k in space.knobs}


def _round_robin(groups: list[list[Any]]) -> Iterable[Any]:
    for layer in itertools.zip_longest(*groups):
        yield from (item for item in layer if item is not None)


def preset_start_trials(spaces: list[Space], limit: int, macs_of: Callable[[Space, str], int] | None = None,
                        encoding: str = KNOB_ENCODING) -> list[StartTrial]:
    """The presets of every space as trials, at most ``limit``, each space's in its file's
    order (smallest first, as the shipped spaces list them: the likeliest to fit a budget;
    their aimed versions then reach up to it), spaces in turn (the one whose first preset has
    the fewest MACs first), so that a cross-family search starts in several families."""
    multi = len(spaces) > 1
    groups = []
    for space in spaces:
        if not space.presets:
            continue
        prefix = f"{space.name}." if multi else ""
        group = []
        for name in space.presets:
            values, exact = project(space, zoo.resolve(name).config)
            group.append(StartTrial(optuna_params(space, values, prefix, multi, encoding),
                                    {START_ATTR: "preset", "preset": name, "preset_exact": exact}))
        groups.append((macs_of(space, space.presets[0]) if macs_of and multi else 0, group))
    groups.sort(key=lambda g: g[0])
    return list(_round_robin([g for _, g in groups]))[:limit]


def deploy_macs(family: str, config: Any, imgsz: int) -> int:
    """MACs of a config's deploy form at ``imgsz``, counted on the meta device (no weights)."""
    spec = zoo.ModelSpec("candidate", family, config, "search", imgsz)
    return count_cost(fuse_for_deploy(spec.build_for_counting()), imgsz).macs


def preset_macs(space: Space, name: str) -> int:
    """MACs of a preset at the space's input size."""
    return deploy_macs(space.family.name, zoo.resolve(name).config, space.imgsz)


# ----------------------------------------------------------------------------- aiming
WIDTH_WORDS = ("width", "dim", "channel")  # per-stage knobs named so are stage widths
_STAGE_FACTORS = tuple(2 ** (i / 4) for i in range(-8, 9))  # x0.25 .. x4 in steps of 2^(1/4)


def width_knobs(space: Space) -> list[Knob]:
    """Knobs that scale widths: a ``scale`` shaper, or a single value named ``*width*``."""
    return [k for k in space.knobs if not k.per_stage and (k.scale or "width" in k.name)]


def stage_width_knobs(space: Space) -> list[Knob]:
    """Per-stage numeric width choices (EfficientViT's ``embed_dims``), for spaces that have
    no single width knob: aiming scales every stage by one common factor."""
    return [k for k in space.knobs
            if k.per_stage and ordered(k) and any(word in k.name for word in WIDTH_WORDS)]


def _nearest_choice(knob: Knob, value: float) -> Any:
    return min(knob.domain, key=lambda c: (abs(c - value), c))


def width_settings(space: Space, values: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The width settings aiming tries, and whether their MACs grow along the list: every
    combination of the single width knobs (no order); where there are none, each stage width
    times a growing common factor, snapped to the nearest choice (in order)."""
    knobs = width_knobs(space)
    if knobs:
        combos = itertools.product(*(knob_domain(k) for k in knobs))
        return [{k.name: v for k, v in zip(knobs, combo)} for combo in combos][:MAX_AIM_CANDIDATES], False
    stage_knobs = stage_width_knobs(space)
    settings: list[dict[str, Any]] = []
    for factor in _STAGE_FACTORS:
        setting = {k.name: tuple(_nearest_choice(k, v * factor) for v in values[k.name]) for k in stage_knobs}
        if setting and setting not in settings:
            settings.append(setting)
    return settings, True


def _macs_or_none(macs_of: Callable[[Any], int], config: Any) -> int | None:
    try:
        return macs_of(config)
    except Exception:  # noqa: BLE001 - a width the builder cannot make is no candidate; the trial goes on
        return None


def _most_macs_within(candidates: list[tuple[dict[str, Any], Any]], macs_of: Callable[[Any], int],
                      limit_macs: float, ordered_by_macs: bool) -> dict[str, Any] | None:
    """The (values, config) candidate with the most MACs at most ``limit_macs``. Counting a
    config costs about a second, so a list ordered by MACs is bisected, not scanned."""
    if ordered_by_macs:
        lo, hi, best = 0, len(candidates) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            macs = _macs_or_none(macs_of, candidates[mid][1])
            if macs is not None and macs <= limit_macs:
                best, lo = candidates[mid][0], mid + 1
            else:
                hi = mid - 1
        return best
    counted = [(macs, values) for values, config in candidates
               if (macs := _macs_or_none(macs_of, config)) is not None and macs <= limit_macs]
    return max(counted, key=lambda c: c[0])[1] if counted else None


def latency_exponent(first: tuple[float, float], second: tuple[float, float]) -> float:
    """e in latency ~ MACs^e through two timed (MACs, ms) points of one width line, clipped to
    EXPONENT_RANGE; 1 (proportional, the first aim's assumption) when the MACs are equal, a
    point is empty, or the slope is not positive. A larger model timed no slower is timing
    noise, not a slope: read as the smallest exponent, it once sent an EfficientViT-M0 aim
    timed at 8 ms on to a 7x-MACs candidate timed at 25 ms, against a 15 ms budget."""
    (macs_a, ms_a), (macs_b, ms_b) = first, second
    if min(macs_a, macs_b, ms_a, ms_b) <= 0 or macs_a == macs_b:
        return 1.0
    slope = math.log(ms_b / ms_a) / math.log(macs_b / macs_a)
    if slope <= 0:
        return 1.0
    return min(max(slope, EXPONENT_RANGE[0]), EXPONENT_RANGE[1])


def within_aim_window(latency_ms: float, budget_ms: float) -> bool:
    return AIM_WINDOW[0] * budget_ms <= latency_ms <= AIM_WINDOW[1] * budget_ms


def aimed_values(space: Space, values: dict[str, Any], macs_of: Callable[[Any], int], measured_ms: float,
                 measured_macs: int, budget_ms: float, exponent: float = 1.0) -> dict[str, Any] | None:
    """The width setting (``width_settings``) with the most MACs whose latency, scaled from the
    measured one as MACs^exponent, is at most AIM_FRACTION of the budget; None when the space
    has no width knob, nothing fits, or the best is the measured setting itself."""
    settings, ordered_by_macs = width_settings(space, values)
    if not settings or measured_macs <= 0:
        return None
    candidates = [(cand_values, cand.config) for setting in settings
                  if not (cand := candidate_from_values(space, cand_values := dict(values, **setting))).violations]
    limit_macs = measured_macs * (AIM_FRACTION * budget_ms / measured_ms) ** (1.0 / exponent)
    best = _most_macs_within(candidates, macs_of, limit_macs, ordered_by_macs)
    if best is None or all(best[name] == values[name] for name in settings[0]):
        return None
    return best


START_SHARE = 0.1  # of a run's trials: presets are good designs for accuracy, not always near the front


def start_limit(trials: int, spaces: int = 1) -> int:
    """How many presets a new study starts with: a tenth of the trials, at least one (each is
    followed by its aimed version where the space has a width knob), and in a cross-family
    search at least one per space, so no family is judged by the sampler's luck alone. More
    cost the front: on efficientvit at 25 ms its six presets as the first of 30 trials
    lowered the hypervolume."""
    return max(1, spaces if spaces > 1 else 0, math.ceil(trials * START_SHARE))


def enqueue_presets(study, spaces: list[Space], limit: int, encoding: str = KNOB_ENCODING) -> int:
    """Enqueue the presets as the first trials of a new study (a resumed or joined study keeps
    the history it has). Returns how many were enqueued."""
    if study.get_trials(deepcopy=False):
        return 0
    starts = preset_start_trials(spaces, limit, preset_macs, encoding)
    for start in starts:
        study.enqueue_trial(start.params, user_attrs=start.user_attrs, skip_if_exists=True)
    return len(starts)
