"""The one interface every backbone in the zoo speaks, and the family descriptor.

A *family* is a frozen config dataclass + a builder + named presets. A backbone
returns its three deepest feature levels from ``forward_features`` (P3/P4/P5 for most
families) and class logits from ``forward``. The detector and the measurements rely on
nothing else.
"""

from __future__ import annotations

import dataclasses
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


def fuse_for_deploy(model: nn.Module) -> nn.Module:
    """Fold BN / re-parameterisable branches into single convs, in place.

    Any submodule with a ``fuse()`` method owns its whole subtree: it is called and its
    children are not visited. Everything else is searched recursively. Returns the model
    in eval mode (fusing is only valid with frozen BN statistics).
    """
    model.eval()

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if hasattr(child, "fuse") and callable(child.fuse):
                child.fuse()
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


__all__ = ["Backbone", "Family", "Published", "fuse_for_deploy", "config_to_dict", "config_from_dict", "field"]
