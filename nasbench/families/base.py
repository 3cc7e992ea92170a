"""The one interface every backbone in the zoo speaks, and the family descriptor.

A *family* is a frozen config dataclass + a builder + named presets. A backbone
returns its three deepest feature levels from ``forward_features`` (P3/P4/P5 for most
families) and class logits from ``forward``. The detector and the measurements rely on
nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class: subclasses set ``out_channels``/``out_strides`` and implement
    ``forward_features``; ``self.head`` maps the last level to logits."""

    out_channels: tuple[int, ...] = ()
    out_strides: tuple[int, ...] = ()
    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_head(self, last_level: torch.Tensor) -> torch.Tensor:
        return self.head(last_level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])

    def feature_info(self, imgsz: int = 256) -> list[dict[str, Any]]:
        """timm-style description of the levels ``forward_features`` returns: per level its
        channels (``num_chs``), stride (``reduction``) and the module that produced it
        (``module``: the outermost module whose output is that very tensor, else, for a level
        reshaped in ``forward_features`` itself, the last module to finish with an output of
        as many elements). Read from one forward at ``imgsz`` on the model's own device
        (meta: shapes only, no compute)."""
        finished: list[tuple[str, torch.Tensor]] = []  # in completion order; kept alive so ids stay unique

        def hook_for(name: str):
            def hook(_module, _inputs, out) -> None:
                if isinstance(out, torch.Tensor):
                    finished.append((name, out))
            return hook

        handles = [m.register_forward_hook(hook_for(n)) for n, m in self.named_modules() if n]
        was_training = self.training
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        try:
            self.eval()
            with torch.no_grad():
                levels = self.forward_features(torch.zeros(1, 3, imgsz, imgsz, device=device))
        finally:
            self.train(was_training)
            for handle in handles:
                handle.remove()
        return [{"num_chs": int(level.shape[1]), "reduction": stride, "module": _producer(level, finished)}
                for level, stride in zip(levels, self.out_strides)]


def _producer(level: torch.Tensor, finished: list[tuple[str, torch.Tensor]]) -> str:
    same = [name for name, out in finished if out is level]
    if same:
        return min(same, key=len)  # a stage and its last block return the same tensor: the stage
    return next((name for name, out in reversed(finished) if out.numel() == level.numel()), "")


# Bumped when the deploy form's modules change in a way that moves a timing (2: a folded
# Conv-BN is the bare conv, no Identity call), so no cached measurement of the old form is reused.
DEPLOY_FORM_REVISION = 2


def fuse_for_deploy(model: nn.Module) -> nn.Module:
    """Fold BN / re-parameterisable branches into single convs, in place.

    Any submodule with a ``fuse()`` method owns its whole subtree: it is called and its
    children are not visited; where it also has ``deployed()``, what that returns takes its
    place in the parent (a fused Conv-BN becomes the bare conv). Everything else is searched
    recursively. Returns the model in eval mode (fusing is only valid with frozen BN statistics).
    """
    model.eval()

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if hasattr(child, "fuse") and callable(child.fuse):
                child.fuse()
                replacement = child.deployed() if callable(getattr(child, "deployed", None)) else child
                if replacement is not child:
                    setattr(module, name, replacement)
            else:
                visit(child)

    visit(model)
    return model


@dataclass(frozen=True)
class Published:
    """A preset's published ImageNet-1k top-1: the ground truth accuracy estimates are judged by."""

    top1: float  # %
    imgsz: int  # eval resolution in px
    source: str


@dataclass(frozen=True)
class Family:
    """Everything the zoo needs to know about one family."""

    name: str
    config_cls: type
    build: Callable[[Any], nn.Module]
    presets: Mapping[str, Any]
    native_imgsz: int
    description: str = ""
    # Preset-independent notes shown by `nasbench models --family X` (units, conventions).
    notes: str = ""
    has_deploy_form: bool = False
    # preset name -> its published ImageNet-1k top-1 (only presets that have one)
    published: Mapping[str, Published] = field(default_factory=dict)

    def knob_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config_cls)]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON-friendly data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(i) for i in v]
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from_dict(config_cls: type, knobs: Mapping[str, Any], base: Any | None = None) -> Any:
    """Build a config from (possibly partial) knobs, on top of ``base`` or the defaults.

    Lists become tuples so configs stay hashable. Unknown knobs raise KeyError with the
    offending names (the zoo turns that into a user error).
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise KeyError(unknown)

    def frozen(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(frozen(i) for i in v)
        return v

    values = {k: frozen(v) for k, v in knobs.items()}
    if base is not None:
        return dataclasses.replace(base, **values)
    return config_cls(**values)


# Limits no lightweight backbone comes near (the widest preset layer: VOLO-D5's 768 dims x 4,
# its deepest: 32 blocks), checked on the config before anything is built: a space
# `int: [1, 1000000]` or a 100000-wide layer would otherwise allocate gigabytes first.
MAX_KNOB_INT = 16384  # any integer knob (a width, a depth, a head count), element-wise
MAX_KNOB_FLOAT = 64.0  # any ratio or multiplier


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def plausibility_problems(cfg: Any) -> list[str]:
    """What makes ``cfg`` implausible for any family, before the family's own validate():
    a negative class count, a rate outside [0, 1), a non-finite number, a knob past the caps."""
    problems = []
    for f in dataclasses.fields(cfg):
        value, numbers = getattr(cfg, f.name), _numbers(getattr(cfg, f.name))
        if f.name == "num_classes" and isinstance(value, int) and value < 0:
            problems.append(f"num_classes must be >= 0 (0 = no classifier, pooled features), got {value}")
        elif not all(math.isfinite(n) for n in numbers):
            problems.append(f"{f.name} must be finite, got {value!r}")
        elif f.name.endswith("_rate") and not all(0.0 <= n < 1.0 for n in numbers):
            problems.append(f"{f.name} is a probability in [0, 1), got {value!r}")
        elif any(isinstance(n, int) and n > MAX_KNOB_INT for n in numbers):
            problems.append(f"{f.name} = {value!r} is past the plausible limit of {MAX_KNOB_INT} per value")
        elif any(isinstance(n, float) and abs(n) > MAX_KNOB_FLOAT for n in numbers):
            problems.append(f"{f.name} = {value!r} is past the plausible limit of {MAX_KNOB_FLOAT:g} for a ratio")
    return problems


__all__ = ["Backbone", "Family", "MAX_KNOB_INT", "Published", "fuse_for_deploy", "config_to_dict", "config_from_dict",
           "field", "plausibility_problems"]
