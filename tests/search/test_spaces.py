"""Search spaces in spaces/*.yaml: each loads, samples mostly valid configs that build,
contains its base preset (and the presets it claims), and bad space files fail with a
UserError that says what is wrong."""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from nasbench.errors import UserError
from nasbench.families.base import Backbone
from nasbench.metrics.cost import count_cost
from nasbench.nas.space import (
    Candidate,
    Knob,
    Space,
    available_spaces,
    candidate_from_values,
    load_space,
    ordered,
    resolve_space_arg,
    sample,
)

SPACE_NAMES = sorted(available_spaces())
N_SAMPLES = 20
MIN_VALID_FRACTION = 0.9
# Cost counting is the slow part (0.1-0.4 s a model on a shared 2-core CPU): every valid
# sample is built, the first few of each space are also counted.
N_COUNTED = 6
SEED = 0

# Presets each space must contain as an exact point (knob values -> the preset's config).
# The others differ from the base in fields the space does not search (e.g. heads = 3 in
# EfficientViT-M1, a different block table in the smaller Mobile-Formers).
REACHABLE_PRESETS = {
    "mobilevit": {"mobilevit_s"},
    "efficientvit": {"efficientvit_m0", "efficientvit_m4"},
    "ghostnetv3": {"ghostnetv3_050", "ghostnetv3_100", "ghostnetv3_130", "ghostnetv3_160"},
    "mobileformer": {"mobileformer_294m"},
    "volo": {"volo_d1", "volo_d2"},
    "hgnetv2": {"hgnetv2_l"},
}


# ------------------------------------------------------------------------- helpers
@functools.cache
def space(name: str) -> Space:
    return load_space(available_spaces()[name])


@functools.cache
def random_candidates(name: str) -> tuple[Candidate, ...]:
    """N_SAMPLES candidates from a seeded random sampler (cached: several tests use them)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=SEED))
    return tuple(sample(study.ask(), space(name)) for _ in range(N_SAMPLES))


def in_domain(knob: Any, value: Any) -> bool:
    if knob.kind == "choices":
        return value in knob.domain
    lo, hi = knob.domain
    return isinstance(value, (int, float)) and lo <= value <= hi


def knob_values_for(sp: Space, target: Any) -> dict[str, Any] | None:
    """Knob values whose candidate config equals ``target``, or None if none do.

    Knobs that set a field directly read the target's value; ``scale``/``times`` knobs
    (whose value is a factor) are found by trying their choices (or 1.0 for a range).
    """
    direct: dict[str, Any] = {}
    factor_knobs = []
    for knob in sp.knobs:
        if knob.scale or knob.times:
            factor_knobs.append(knob)
            continue
        value = getattr(target, knob.target)
        if knob.repeat:
            if len(value) != knob.repeat or len(set(value)) != 1:
                return None
            value = value[0]
        if knob.per_stage:
            if len(value) != knob.per_stage or not all(in_domain(knob, v) for v in value):
                return None
            value = tuple(value)
        elif not in_domain(knob, value):
            return None
        direct[knob.name] = value
    options = [knob.domain if knob.kind == "choices" else (1.0,) for knob in factor_knobs]
    for factors in itertools.product(*options):
        values = {**direct, **{k.name: f for k, f in zip(factor_knobs, factors)}}
        if candidate_from_values(sp, values).config == target:
            return values
    return None


def write_space(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------- the spaces
def test_space_files_exist() -> None:
    for name in ("mobilevit", "mobilevitv2", "efficientvit", "ghostnetv3", "mobileformer", "volo", "hgnetv2"):
        assert name in SPACE_NAMES, f"spaces/{name}.yaml is missing"


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_space_loads_with_its_presets(name: str) -> None:
    sp = space(name)
    assert sp.family.name == name
    assert sp.imgsz == sp.family.native_imgsz
    assert sp.base_name in sp.family.presets
    assert sp.presets and all(p in sp.family.presets for p in sp.presets)
    assert sp.knobs
    assert resolve_space_arg(name)[0].knobs == sp.knobs


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_random_samples_are_mostly_valid_and_build(name: str) -> None:
    sp = space(name)
    candidates = random_candidates(name)
    valid = [c for c in candidates if not c.violations]
    assert len(valid) >= MIN_VALID_FRACTION * len(candidates), (
        f"{name}: {len(candidates) - len(valid)}/{len(candidates)} samples break a constraint, e.g. "
        f"{next(c.violations for c in candidates if c.violations)}"
    )
    assert len({c.config for c in valid}) > 1, "the knobs do not change the config"
    for i, cand in enumerate(valid):
        with torch.device("meta"):
            model = sp.family.build(cand.config)
        assert isinstance(model, Backbone)
        assert len(model.out_channels) == 3 and len(model.out_strides) == 3
        if i < N_COUNTED:
            assert count_cost(model, sp.imgsz).macs > 0, cand.params


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_smallest_sample_runs_on_cpu(name: str) -> None:
    """The valid sample with the fewest parameters runs forward_features at the space's size."""
    sp = space(name)
    valid = [c for c in random_candidates(name) if not c.violations]

    def meta_params(cand: Candidate) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in sp.family.build(cand.config).parameters())

    cand = min(valid, key=meta_params)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = sp.family.build(cand.config).eval()
        with torch.no_grad():
            levels = model.forward_features(torch.randn(1, 3, sp.imgsz, sp.imgsz))
    finally:
        torch.set_num_threads(threads)
    assert len(levels) == 3
    for level, channels, stride in zip(levels, model.out_channels, model.out_strides):
        assert level.shape[:2] == (1, channels)
        assert level.shape[-1] == math.ceil(sp.imgsz / stride), (tuple(level.shape), stride)
        assert torch.isfinite(level).all()


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_base_preset_is_a_point_of_the_space(name: str) -> None:
    sp = space(name)
    values = knob_values_for(sp, sp.base)
    if values is None and name not in REACHABLE_PRESETS:
        pytest.skip(f"{name}: the base is not expressible in this space's knobs")
    assert values is not None, f"{name}: no knob values reproduce the base preset {sp.base_name}"
    cand = candidate_from_values(sp, values)
    assert cand.config == sp.base
    assert cand.violations == ()


@pytest.mark.parametrize("name", sorted(REACHABLE_PRESETS))
def test_listed_presets_are_points_of_the_space(name: str) -> None:
    sp = space(name)
    for preset in sorted(REACHABLE_PRESETS[name]):
        values = knob_values_for(sp, sp.family.presets[preset])
        assert values is not None, f"{name}: preset {preset} is not reachable"
        assert candidate_from_values(sp, values).violations == ()


def test_volo_width_keeps_head_dim_and_shared_transformer_width() -> None:
    """The VOLO width knob scales dims and heads together: every head stays 32 wide."""
    sp = space("volo")
    width = next(k for k in sp.knobs if k.name == "width")
    base = knob_values_for(sp, sp.base)
    assert base is not None
    for w in width.domain:
        cfg = candidate_from_values(sp, {**base, "width": w}).config
        assert all(d == 32 * h for d, h in zip(cfg.embed_dims, cfg.num_heads)), (w, cfg.embed_dims)
        assert len(set(cfg.embed_dims[1:])) == 1


# ------------------------------------------------------------------ error cases
GOOD_KNOB = "  width: {choices: [0.5, 1.0], scale: [stage_channels]}\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("family: mobilevit\nknobs:\n  transformer_blocks: {int: [4, 1], per_stage: 3}\n", "min 4 > max 1"),
        ("family: mobilevit\nknobs:\n  heads: {choices: []}\n", "choices must be a non-empty list"),
        (f"family: mobilevit\nknobs:\n{GOOD_KNOB}constraints:\n  - divisible: [no_such_field, heads]\n",
         "unknown knob/field 'no_such_field'"),
        (f"family: mobilevitt\nknobs:\n{GOOD_KNOB}", "unknown family 'mobilevitt'; did you mean mobilevit"),
        ("family: mobilevit\nknobs:\n  depth: {int: [1, 4], field: transformer_block}\n",
         "'transformer_block' is not a config field (did you mean 'transformer_blocks'?)"),
        ("family: mobilevit\nknobs:\n  width: {choices: [0.5, 1.0], scale: [stage_chanels]}\n",
         "'stage_chanels' is not a config field"),
        ("family: mobilevit\nknobs: {width: {choices: [0.5, 1.0]\n", "cannot read space"),
        ("- family: mobilevit\n", "must be a mapping"),
        ("family: mobilevit\nknobs: {}\n", "'knobs' must be a non-empty mapping"),
        (f"family: mobilevit\nbase: mobilevit_xl\nknobs:\n{GOOD_KNOB}", "base 'mobilevit_xl' is not a preset"),
        (f"family: mobilevit\npresets: [mobilevit_s, mobilevit_m]\nknobs:\n{GOOD_KNOB}",
         "preset 'mobilevit_m' is not a preset"),
        (f"family: mobilevit\nknobs:\n{GOOD_KNOB}constraints:\n  - between: [heads, 4]\n",
         "unknown constraint 'between'"),
        ("family: mobilevit\nknobs:\n  heads: {choices: [2, 4], int: [1, 4]}\n", "needs exactly one of"),
    ],
    ids=["min>max", "empty-choices", "constraint-unknown-field", "unknown-family", "knob-unknown-field",
         "scale-unknown-field", "malformed-yaml", "not-a-mapping", "no-knobs", "unknown-base",
         "unknown-preset", "unknown-constraint-op", "two-kinds"],
)
def test_bad_space_file_raises_user_error(tmp_path: Path, text: str, message: str) -> None:
    path = write_space(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_space(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)  # the message says which file
    assert "\n" not in str(err.value)


def test_unknown_space_name_suggests_close_names() -> None:
    with pytest.raises(UserError, match="unknown space 'efficientvitt'; did you mean efficientvit"):
        resolve_space_arg("efficientvitt")


def test_numeric_choices_in_increasing_order_are_asked_for_by_index() -> None:
    """GPSampler's kernel puts a categorical's values equally far apart, so numeric choices
    are asked for as their index (the order kept); booleans, strings and a list the file
    does not sort stay categoricals."""
    knobs = {k.name: k for k in space("efficientvit").knobs}
    assert ordered(knobs["embed_dims"]) and ordered(knobs["ffn_ratio"]) and ordered(knobs["heads"])
    assert not ordered(Knob("light", "choices", (False, True)))
    assert not ordered(Knob("act", "choices", ("gelu", "silu")))
    assert not ordered(Knob("k", "choices", (5, 3, 7)))
    assert not ordered(Knob("d", "int", (1, 4)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    embed = knobs["embed_dims"].domain
    for seed in range(3):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        cand = sample(trial, space("efficientvit"))
        assert trial.distributions["embed_dims_0"] == optuna.distributions.IntDistribution(0, len(embed) - 1)
        assert cand.config.embed_dims[0] == embed[trial.params["embed_dims_0"]] == cand.params["embed_dims_0"]
        assert trial.distributions["depths_0"] == optuna.distributions.IntDistribution(1, 4)  # an int stays one
        legacy = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        cand = sample(legacy, space("efficientvit"), encoding="value")
        assert legacy.distributions["embed_dims_0"] == optuna.distributions.CategoricalDistribution(embed)
        assert cand.config.embed_dims[0] == legacy.params["embed_dims_0"]
