"""Search spaces are data: a YAML file per family, translated generically into Optuna
``suggest_*`` calls and then into that family's config. No family-specific code here.

A space file::

    family: mobilevit          # the config class the knobs fill
    base: mobilevit_s          # preset whose values the unsearched fields keep
    imgsz: 256                 # native input size for latency
    presets: [mobilevit_xxs, mobilevit_xs, mobilevit_s]   # compared with the result
    knobs:
      width:  {choices: [0.5, 0.75, 1.0], scale: [stage_channels]}   # x base, /8-rounded
      transformer_dims: {choices: [96, 144, 192], per_stage: 3}     # one value per stage
      ffn_ratio: {choices: [1.5, 2.0], field: ffn_dims, times: transformer_dims}
      transformer_blocks: {int: [1, 4], per_stage: 3}
      patch: {choices: [2, 4], field: patch_size, repeat: 2}
      drop: {float: [0.0, 0.2], field: drop_rate}
    constraints:               # declarative; nothing from the file is ever evaluated
      - divisible: [transformer_dims, heads]
      - max: [patch_size, 4]
      - le: [transformer_blocks, [4, 4, 4]]

Knob kinds: ``choices`` (numbers listed in increasing order are ordered: see
``KNOB_ENCODINGS``; anything else is categorical), ``int: [lo, hi]`` (optional ``step``), ``float:
[lo, hi]`` (optional ``step`` or ``log: true``). Shapers: ``per_stage: n`` (n
independent values -> a tuple), ``repeat: n`` (one value -> an n-tuple), ``scale:
[fields]`` (multiplies the base values of those fields, rounded to ``divisor``, default
8), ``times: field`` (this field = value x that field, rounded likewise).
Constraint ops: ``divisible``, ``max``, ``min``, ``le``; operands are config fields or
numbers, compared element-wise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
import yaml

from nasbench import zoo
from nasbench.errors import UserError, first_line
from nasbench.families.base import Family, plausibility_problems
from nasbench.families.layers import make_divisible
from nasbench.yamlfile import load_yaml

SPACES_PACKAGE = "nasbench.spaces"  # the top-level spaces/ folder, shipped in the wheel under this name
KINDS = ("choices", "int", "float")
SHAPERS = ("per_stage", "repeat", "scale", "times", "field", "divisor", "step", "log")
CONSTRAINT_OPS = ("divisible", "max", "min", "le")
# How a study asks Optuna for a ``choices`` knob. "index": numbers listed in increasing order
# are asked for as their index, so the samplers see the order (GPSampler's kernel puts every
# two values of a categorical equally far apart: width 32 as far from 48 as from 384). With
# the order seen, GP's hypervolume at efficientvit 25 ms went from 1.23x to 1.66x random's, ahead
# in 3 of 3 paired seeds (benchmarks/results/search_efficiency_auto_cpu.md, section 5).
# "value": every choice list a categorical, as studies made before "index" were; they resume with it.
KNOB_ENCODINGS = ("index", "value")
KNOB_ENCODING = "index"  # of a new study


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # choices | int | float
    domain: tuple  # choices, or (lo, hi)
    step: float | int | None = None
    log: bool = False
    per_stage: int | None = None
    repeat: int | None = None
    scale: tuple[str, ...] = ()
    times: str | None = None
    field: str | None = None
    divisor: int = 8

    @property
    def target(self) -> str:
        return self.field or self.name


@dataclass(frozen=True)
class Constraint:
    op: str
    left: str | float | tuple
    right: str | float | tuple

    def describe(self) -> str:
        return f"{self.op}: [{self.left}, {self.right}]"


@dataclass(frozen=True)
class Space:
    name: str
    family: Family
    base_name: str
    base: Any  # the base preset's config
    imgsz: int
    knobs: tuple[Knob, ...]
    constraints: tuple[Constraint, ...]
    presets: tuple[str, ...]
    source: str  # file path


@dataclass(frozen=True)
class Candidate:
    """A sampled point: its family, Optuna params and the family config they make."""

    family: str
    params: dict[str, Any]
    config: Any
    violations: tuple[str, ...]


# ------------------------------------------------------------------------- loading
def available_spaces() -> dict[str, Path]:
    """The shipped spaces by name, read through importlib.resources (the same in a wheel
    install as in a source checkout)."""
    try:
        folder = resources.files(SPACES_PACKAGE)
    except ModuleNotFoundError:
        return {}
    files = [Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")]
    return {p.stem: p for p in sorted(files)}


def resolve_space_arg(arg: str) -> list[Space]:
    """``mobilevit`` | ``path/to/space.yaml`` | ``all`` -> the spaces to search."""
    spaces = available_spaces()
    if not spaces and not arg.endswith((".yaml", ".yml")):
        raise UserError(f"this install of nasbench has no search spaces ({SPACES_PACKAGE} is missing or empty): "
                        "reinstall it, or pass a space .yaml file")
    if arg == "all":
        return [load_space(p) for p in spaces.values()]
    if arg in spaces:
        return [load_space(spaces[arg])]
    path = Path(arg)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"space file not found: {path}")
        return [load_space(path)]
    hint = zoo.closest_names(arg, list(spaces))
    raise UserError(f"unknown space '{arg}'" + (f"; did you mean {', '.join(hint)}?" if hint else "")
                    + f" (spaces: {', '.join(spaces)}, all, or a .yaml file)")


def load_space(path: Path) -> Space:
    where = str(path)
    try:
        data = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read space {where}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"space {where}: must be a mapping with family, knobs")
    return parse_space(data, where, name=path.stem)


def parse_space(data: dict, where: str, name: str) -> Space:
    unknown_top = set(data) - {"family", "base", "imgsz", "knobs", "constraints", "presets", "description"}
    if unknown_top:
        raise UserError(f"space {where}: unknown key(s) {', '.join(sorted(unknown_top))}")
    families = zoo.all_families()
    fam_name = data.get("family")
    if fam_name not in families:
        hint = zoo.closest_names(str(fam_name), list(families))
        raise UserError(f"space {where}: unknown family '{fam_name}'"
                        + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    fam = families[fam_name]
    base_name = data.get("base") or next(iter(fam.presets))
    if base_name not in fam.presets:
        raise UserError(f"space {where}: base '{base_name}' is not a preset of {fam_name} ({', '.join(fam.presets)})")
    base = fam.presets[base_name]
    fields = {f.name for f in dataclasses.fields(fam.config_cls)}
    raw_knobs = data.get("knobs")
    if not isinstance(raw_knobs, dict) or not raw_knobs:
        raise UserError(f"space {where}: 'knobs' must be a non-empty mapping")
    knobs = tuple(parse_knob(k, v, fields, where) for k, v in raw_knobs.items())
    for knob in knobs:
        problem = domain_type_error(knob, fam.config_cls) or domain_plausibility_error(knob, base)
        if problem:
            raise UserError(f"space {where}, knob '{knob.name}': {problem}")
    constraints = tuple(parse_constraint(c, fields, where) for c in data.get("constraints") or [])
    raw_presets = data.get("presets") or list(fam.presets)
    presets = (raw_presets,) if isinstance(raw_presets, str) else tuple(raw_presets)
    for p in presets:
        if p not in fam.presets:
            raise UserError(f"space {where}: preset '{p}' is not a preset of {fam_name}")
    imgsz = data.get("imgsz", fam.native_imgsz)
    if not isinstance(imgsz, int) or imgsz < 16:
        raise UserError(f"space {where}: imgsz must be an integer >= 16, got {imgsz!r}")
    return Space(name, fam, base_name, base, imgsz, knobs, constraints, presets, where)


def parse_knob(name: str, spec: Any, fields: set[str], where: str) -> Knob:
    at = f"space {where}, knob '{name}'"
    if not isinstance(spec, dict):
        raise UserError(f"{at}: must be a mapping such as {{choices: [...]}} or {{int: [lo, hi]}}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise UserError(f"{at}: needs exactly one of {', '.join(KINDS)}")
    unknown = set(spec) - set(KINDS) - set(SHAPERS)
    if unknown:
        raise UserError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = kinds[0]
    domain = spec[kind]
    if kind == "choices":
        if not isinstance(domain, list) or not domain:
            raise UserError(f"{at}: choices must be a non-empty list")
        if not all(isinstance(c, (int, float, str, bool)) for c in domain):
            raise UserError(f"{at}: choices must be numbers, strings or booleans")
    else:
        if not (isinstance(domain, list) and len(domain) == 2 and all(isinstance(v, (int, float)) for v in domain)):
            raise UserError(f"{at}: {kind} needs [lo, hi]")
        if domain[0] > domain[1]:
            raise UserError(f"{at}: min {domain[0]} > max {domain[1]}")
        if kind == "int" and not all(float(v).is_integer() for v in domain):
            raise UserError(f"{at}: int bounds must be integers")
    knob = Knob(
        name=name, kind=kind, domain=tuple(domain), step=spec.get("step"), log=bool(spec.get("log", False)),
        per_stage=spec.get("per_stage"), repeat=spec.get("repeat"), scale=tuple(spec.get("scale") or ()),
        times=spec.get("times"), field=spec.get("field"), divisor=spec.get("divisor", 8),
    )
    if not isinstance(knob.divisor, int) or knob.divisor < 1:
        raise UserError(f"{at}: divisor must be a positive integer")
    for count in ("per_stage", "repeat"):
        n = getattr(knob, count)
        if n is not None and (not isinstance(n, int) or n < 1):
            raise UserError(f"{at}: {count} must be a positive integer")
    targets = list(knob.scale) if knob.scale else [knob.target]
    if knob.times:
        targets.append(knob.times)
    for t in targets:
        if t not in fields:
            hint = zoo.closest_names(t, sorted(fields), n=1)
            raise UserError(f"{at}: '{t}' is not a config field" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    return knob


def domain_type_error(knob: Knob, config_cls: type) -> str | None:
    """A choice or bound of the wrong type for its field, found before any trial is sampled
    (else it surfaces as a TypeError inside the family's validate() or builder)."""
    if knob.kind == "choices":
        values = list(knob.domain)
    else:
        values = [int(v) if knob.kind == "int" else float(v) for v in knob.domain]
    if knob.scale or knob.times:  # factors multiplying base values
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
        return f"factors must be numbers, got {bad[0]!r}" if bad else None
    element = bool(knob.per_stage or knob.repeat)  # each value is one element of a tuple field
    problems = (zoo.knob_type_error(config_cls, knob.target, v, element=element) for v in values)
    return next((f"field '{knob.target}' {p}" for p in problems if p), None)


def domain_plausibility_error(knob: Knob, base: Any) -> str | None:
    """A bound or choice that would make a config past the plausible limits (a depth of
    1,000,000, a rate of 5): refused with the space, before any trial builds anything."""
    for v in knob.domain:
        if knob.scale:
            fields = {f: _scaled(getattr(base, f), v, knob.divisor) for f in knob.scale}
        elif knob.times:
            fields = {knob.target: _scaled(getattr(base, knob.times), v, knob.divisor)}
        else:
            fields = {knob.target: (v,) if knob.per_stage or knob.repeat else v}
        problems = plausibility_problems(dataclasses.replace(base, **fields))
        if problems:
            return f"{v!r} is out of bounds: {problems[0]}"
    return None


def parse_constraint(spec: Any, fields: set[str], where: str) -> Constraint:
    if not (isinstance(spec, dict) and len(spec) == 1):
        raise UserError(f"space {where}: each constraint is one of {', '.join(CONSTRAINT_OPS)}: [a, b]")
    op, args = next(iter(spec.items()))
    if op not in CONSTRAINT_OPS:
        raise UserError(f"space {where}: unknown constraint '{op}' (use {', '.join(CONSTRAINT_OPS)})")
    if not (isinstance(args, list) and len(args) == 2):
        raise UserError(f"space {where}: constraint {op} needs two operands [a, b]")
    for a in args:
        if isinstance(a, str) and a not in fields:
            raise UserError(f"space {where}: constraint {op} names unknown knob/field '{a}'")
    left, right = (tuple(a) if isinstance(a, list) else a for a in args)
    return Constraint(op, left, right)


# ------------------------------------------------------------------------- sampling
def ordered(knob: Knob) -> bool:
    """Whether a ``choices`` knob's values are numbers in increasing order (booleans are not numbers here)."""
    values = knob.domain
    return knob.kind == "choices" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
        and all(a < b for a, b in zip(values, values[1:]))


def param_value(knob: Knob, value: Any, encoding: str) -> Any:
    """A knob value as the study's Optuna param holds it (see ``KNOB_ENCODINGS``)."""
    return knob.domain.index(value) if encoding == "index" and ordered(knob) else value


def suggest_value(trial: optuna.Trial, param: str, knob: Knob, encoding: str = KNOB_ENCODING) -> Any:
    if encoding == "index" and ordered(knob):
        return knob.domain[trial.suggest_int(param, 0, len(knob.domain) - 1)]
    if knob.kind == "choices":
        return trial.suggest_categorical(param, list(knob.domain))
    lo, hi = knob.domain
    if knob.kind == "int":
        return trial.suggest_int(param, int(lo), int(hi), step=int(knob.step or 1), log=knob.log)
    return trial.suggest_float(param, float(lo), float(hi), step=knob.step, log=knob.log)


def sample(trial: optuna.Trial, space: Space, prefix: str = "", encoding: str = KNOB_ENCODING) -> Candidate:
    """Ask Optuna for every knob of ``space`` and build the family config. The candidate's
    params hold knob values (not indices), flattened per stage."""
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for knob in space.knobs:
        if knob.per_stage:
            vals = tuple(suggest_value(trial, f"{prefix}{knob.name}_{i}", knob, encoding)
                         for i in range(knob.per_stage))
            params.update({f"{knob.name}_{i}": v for i, v in enumerate(vals)})
            values[knob.name] = vals
        else:
            values[knob.name] = params[knob.name] = suggest_value(trial, f"{prefix}{knob.name}", knob, encoding)
    return candidate_from_values(space, values, params)


def candidate_from_values(space: Space, values: dict[str, Any], params: dict[str, Any] | None = None) -> Candidate:
    """Apply knob values to the base config: direct fields, then scales, then products."""
    fields = {f.name: getattr(space.base, f.name) for f in dataclasses.fields(space.base)}
    order = sorted(space.knobs, key=lambda k: (bool(k.times), bool(k.scale)))  # direct, scale, times
    for knob in order:
        v = values[knob.name]
        if knob.scale:
            for f in knob.scale:
                fields[f] = _scaled(getattr(space.base, f), v, knob.divisor)
        elif knob.times:
            fields[knob.target] = _scaled(fields[knob.times], v, knob.divisor)
        elif knob.repeat:
            fields[knob.target] = tuple([v] * knob.repeat)
        else:
            fields[knob.target] = v
    config = dataclasses.replace(space.base, **{k: fields[k] for k in fields})
    return Candidate(space.family.name, dict(params or values), config, violations(space, config))


def _scaled(base: Any, factor: Any, divisor: int) -> Any:
    if isinstance(factor, (tuple, list)):  # per-stage factors: element-wise
        if not isinstance(base, (tuple, list)) or len(base) != len(factor):
            raise UserError(f"a per-stage factor of {len(factor)} values cannot scale {base!r}")
        return tuple(_scaled(b, f, divisor) for b, f in zip(base, factor))
    if isinstance(base, (tuple, list)):
        return tuple(_scaled(b, factor, divisor) for b in base)
    if isinstance(base, int):
        return make_divisible(base * factor, divisor)
    return base * factor


def _operand(config: Any, x: Any) -> tuple:
    v = getattr(config, x) if isinstance(x, str) else x
    if isinstance(v, (tuple, list)):
        return tuple(_flatten(v))
    return (v,)


def _flatten(v: Iterable) -> Iterable:
    for i in v:
        if isinstance(i, (tuple, list)):
            yield from _flatten(i)
        else:
            yield i


def _pairs(a: tuple, b: tuple) -> list[tuple]:
    if len(a) == len(b):
        return list(zip(a, b))
    if len(b) == 1:
        return [(x, b[0]) for x in a]
    if len(a) == 1:
        return [(a[0], y) for y in b]
    return [(x, y) for x in a for y in b]


def violations(space: Space, config: Any) -> tuple[str, ...]:
    """Which constraints (and the family's own validate()) the config breaks."""
    broken = []
    for c in space.constraints:
        pairs = _pairs(_operand(config, c.left), _operand(config, c.right))
        ok = {
            "divisible": lambda a, b: b != 0 and a % b == 0,
            "max": lambda a, b: a <= b,
            "min": lambda a, b: a >= b,
            "le": lambda a, b: a <= b,
        }[c.op]
        if not all(ok(a, b) for a, b in pairs):
            broken.append(c.describe())
    broken += plausibility_problems(config)
    validate = getattr(config, "validate", None)
    if not broken and callable(validate):
        try:
            validate()
        except ValueError as exc:
            broken.append(str(exc))
    return tuple(broken)
