"""The model zoo: name, config file or user factory -> model.

Three ways to name a model, all accepted wherever the CLI takes MODEL:
- a preset name (``mobilevit_s``), listed by ``nasbench models``;
- a config file (``*.yaml``/``*.yml``/``*.json``) with ``family:`` and knobs, optionally
  ``preset:`` to start from a preset and override a few knobs;
- a user factory ``path/to/file.py:factory`` or ``package.module:factory`` returning any
  ``nn.Module``. This executes the named user code, and only because it was named.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import pkgutil
import sys
import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from nasbench import families as families_pkg
from nasbench.errors import BuildError, UserError, first_line
from nasbench.families.base import Family, config_from_dict, config_to_dict, plausibility_problems
from nasbench.yamlfile import load_yaml

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


@lru_cache(maxsize=1)
def all_families() -> dict[str, Family]:
    """Every family, discovered from the modules of ``nasbench.families``."""
    found: dict[str, Family] = {}
    for info in pkgutil.iter_modules(families_pkg.__path__):
        module = importlib.import_module(f"{families_pkg.__name__}.{info.name}")
        for fam in getattr(module, "FAMILIES", ()):
            found[fam.name] = fam
    return found


@lru_cache(maxsize=1)
def all_presets() -> dict[str, tuple[Family, Any]]:
    """Preset name -> (family, config), across all families."""
    return {name: (fam, cfg) for fam in all_families().values() for name, cfg in fam.presets.items()}


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model name: where it came from and how to build it."""

    name: str
    family: str  # family name, or "custom" for user factories
    config: Any | None  # the family config; None for user factories
    source: str  # "preset" | "config" | "factory"
    native_imgsz: int | None = None
    factory: Any = None  # callable for user factories

    def build(self, num_classes: int | None = None) -> nn.Module:
        if self.factory is not None:
            return self.factory()
        fam = all_families()[self.family]
        cfg = self.config
        if num_classes is not None:
            cfg = config_from_dict(fam.config_cls, {"num_classes": num_classes}, base=cfg)
        try:
            return fam.build(cfg)
        except BUILDER_ERRORS as exc:  # an implausible config the checks let through
            raise self.build_error(exc) from None

    def build_for_counting(self) -> nn.Module:
        """As ``build``, on the meta device when the family allows (no weight allocated)."""
        try:
            return build_for_counting(all_families()[self.family], self.config)
        except BUILDER_ERRORS as exc:
            raise self.build_error(exc) from None

    def build_error(self, exc: BaseException) -> BuildError:
        return BuildError(f"cannot build {self.name} ({self.family}): {type(exc).__name__}: "
                          f"{first_line(exc, '(no message)')}")


# What a family builder raises for a config it cannot build (a bad shape, a bad rate).
BUILDER_ERRORS = (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError, AssertionError)


def closest_names(name: str, candidates: list[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)


def resolve(name: str) -> ModelSpec:
    """Turn what the user typed into a ``ModelSpec``; raise ``UserError`` if impossible."""
    presets = all_presets()
    if name in presets:
        fam, cfg = presets[name]
        return ModelSpec(name, fam.name, cfg, "preset", fam.native_imgsz)
    if name.lower().endswith(CONFIG_SUFFIXES):
        return spec_from_config_file(Path(name))
    if ":" in name:
        return spec_from_factory(name)
    hint = closest_names(name, list(presets))
    did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
    raise UserError(
        f"unknown model '{name}'{did_you_mean} (run `nasbench models` for the list, "
        "or pass a config .yaml/.json or file.py:factory)"
    )


def create(name: str, num_classes: int | None = None) -> nn.Module:
    return resolve(name).build(num_classes)


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        first = first_line(exc)
        raise UserError(f"cannot read config {path}: {first}") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping with a 'family:' key")
    return data


def spec_from_config_file(path: Path) -> ModelSpec:
    data = read_config_file(path)
    return spec_from_mapping(data, default_name=path.stem, where=str(path))


def spec_from_mapping(data: dict[str, Any], default_name: str, where: str = "config") -> ModelSpec:
    """A config mapping (``family``, optional ``name``/``preset``, knobs) -> ModelSpec."""
    data = dict(data)
    family_name = data.pop("family", None)
    name = str(data.pop("name", default_name))
    preset = data.pop("preset", None)
    knobs = data.pop("knobs", None)
    if knobs is not None:  # accept both flat knobs and a nested `knobs:` mapping
        if not isinstance(knobs, dict):
            raise UserError(f"{where}: 'knobs' must be a mapping")
        data.update(knobs)
    families = all_families()
    base = None
    if preset is not None:
        if preset not in all_presets():
            hint = closest_names(str(preset), list(all_presets()))
            raise UserError(f"{where}: unknown preset '{preset}'"
                            + (f"; did you mean {', '.join(hint)}?" if hint else ""))
        pfam, base = all_presets()[preset]
        family_name = family_name or pfam.name
        if pfam.name != family_name:
            raise UserError(f"{where}: preset '{preset}' is family '{pfam.name}', not '{family_name}'")
    if family_name is None:
        raise UserError(f"{where}: missing 'family:' (one of {', '.join(sorted(families))})")
    if family_name not in families:
        hint = closest_names(str(family_name), list(families))
        raise UserError(
            f"{where}: unknown family '{family_name}'"
            + (f"; did you mean {', '.join(hint)}?" if hint else f" (known: {', '.join(sorted(families))})")
        )
    fam = families[family_name]
    try:
        cfg = config_from_dict(fam.config_cls, data, base=base)
    except KeyError as exc:
        bad = exc.args[0] if exc.args and isinstance(exc.args[0], list) else [str(exc)]
        hints = {b: closest_names(b, fam.knob_names(), n=1) for b in bad}
        said = ", ".join(f"'{b}'" + (f" (did you mean '{h[0]}'?)" if h else "") for b, h in hints.items())
        raise UserError(f"{where}: unknown knob {said} for family '{family_name}'") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: invalid knobs for family '{family_name}': {exc}") from None
    for knob, value in data.items():  # `heads: four` names the knob, not a TypeError deep in validate()
        problem = knob_type_error(fam.config_cls, knob, value)
        if problem:
            raise UserError(f"{where}: knob '{knob}' of family '{family_name}' {problem}")
    implausible = plausibility_problems(cfg)
    if implausible:
        raise UserError(f"{where}: {implausible[0]}")
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
    return ModelSpec(name, family_name, cfg, "config", fam.native_imgsz)


_SINGULAR = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURAL = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _options(hint: Any) -> tuple:
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _element_hints(hint: Any) -> tuple:
    """What one element of a tuple-annotated field may be (``tuple[int, ...] | None`` -> int)."""
    elements = [a for o in _options(hint) if typing.get_origin(o) is tuple
                for a in typing.get_args(o) if a is not Ellipsis]
    return tuple(dict.fromkeys(elements)) or (Any,)


def _matches(value: Any, hint: Any) -> bool:
    if len(_options(hint)) > 1:
        return any(_matches(value, o) for o in _options(hint))
    if hint is bool or hint is str or hint is type(None):
        return isinstance(value, hint)
    if hint is int or hint is float:  # an int is a fine float; a bool is neither
        return isinstance(value, (int,) if hint is int else (int, float)) and not isinstance(value, bool)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, (list, tuple)) and all(any(_matches(v, e) for e in _element_hints(hint))
                                                        for v in value)
    return True  # other annotations: validate() and the builder decide


def _describe(hint: Any) -> str:
    if len(_options(hint)) > 1:
        return " or ".join(_describe(o) for o in _options(hint))
    if typing.get_origin(hint) is tuple:
        return "a list of " + " or ".join(_PLURAL.get(e, "lists") for e in _element_hints(hint))
    return _SINGULAR.get(hint, str(hint))


def knob_type_error(config_cls: type, knob: str, value: Any, element: bool = False) -> str | None:
    """Why ``value`` cannot be field ``knob`` of ``config_cls`` by its annotation ("must be an
    integer, got 'four'"), or None. ``element``: ``value`` is one element of a tuple field."""
    hint = typing.get_type_hints(config_cls).get(knob)
    if hint is None:
        return None
    hints = _element_hints(hint) if element else (hint,)
    if any(_matches(value, h) for h in hints):
        return None
    return f"must be {' or '.join(_describe(h) for h in hints)}, got {value!r}"


def spec_from_factory(target: str) -> ModelSpec:
    """``file.py:factory`` or ``package.module:factory`` -> ModelSpec (runs user code)."""
    module_part, _, attr = target.rpartition(":")
    if not module_part or not attr:
        raise UserError(f"cannot parse '{target}': expected path/to/file.py:factory or package.module:factory")
    try:
        if module_part.endswith(".py"):
            path = Path(module_part)
            if not path.is_file():
                raise UserError(f"model file not found: {path}")
            mod_name = f"nasbench_user_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_part)
    except UserError:
        raise
    except BaseException as exc:  # user code may raise anything, even SystemExit
        why = first_line(exc, "(no message)")
        raise UserError(f"cannot import '{module_part}': {type(exc).__name__}: {why}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UserError(f"'{module_part}' has no callable '{attr}'")
    return ModelSpec(attr, "custom", None, "factory", None, factory=_checked_factory(target, factory))


def _checked_factory(target: str, factory: Any):
    def build() -> nn.Module:
        try:
            model = factory()
        except BaseException as exc:
            why = first_line(exc, "(no message)")
            raise UserError(f"factory '{target}' raised {type(exc).__name__}: {why}") from None
        if not isinstance(model, nn.Module):
            raise UserError(f"factory '{target}' returned {type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def spec_to_yaml(spec: ModelSpec) -> str:
    """The YAML text that ``resolve`` reads back to the same config."""
    data = {"name": spec.name, "family": spec.family, **config_to_dict(spec.config)}
    return yaml.safe_dump(data, sort_keys=False)


def build_for_counting(fam: Family, cfg: Any) -> nn.Module:
    """Build a model without allocating weights (meta device) when the family allows.

    Used for listing costs of every preset (VOLO-D5 alone is 296M params). Falls back
    to a normal CPU build for constructors that need real tensors.
    """
    import torch

    try:
        with torch.device("meta"):
            return fam.build(cfg)
    except Exception:
        return fam.build(cfg)
