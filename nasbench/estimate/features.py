"""Family-free architecture features of a built model, for fitted accuracy estimators.

Everything here is read from one forward pass of the model itself (on the ``meta``
device when it allows, so VOLO-D5 costs milliseconds): no names, no family, no config.
A user's ``file.py:factory`` model gets the same features as a preset.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from nasbench.metrics.cost import count_cost

_ATTENTION_OPS = ("aten.bmm", "aten._scaled_dot_product", "aten.baddbmm")


@dataclass(frozen=True)
class ArchFeatures:
    """What the fitted estimators may see of an architecture (MACs per image at ``imgsz``)."""

    imgsz: int
    macs: int
    params: int
    weight_layers: int  # conv + linear layers that ran
    conv_dense_macs: int  # k > 1, groups == 1
    conv_pointwise_macs: int  # 1 x 1, groups == 1
    conv_grouped_macs: int  # groups > 1 (depthwise included)
    linear_macs: int
    attention_macs: int  # QK^T and AV (bmm / scaled-dot-product)
    activation_elements: int  # outputs of the weight layers: memory traffic
    positional_params: int  # weights of layers run at more than one position (not the per-image head/FC layers)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def log_values(self) -> dict[str, float]:
        """The derived, scale-free quantities the fitted estimators use."""
        macs = max(self.macs, 1)
        return {
            "log_layers": math.log(max(self.weight_layers, 1)),
            "grouped_share": self.conv_grouped_macs / macs,
            "dense_share": self.conv_dense_macs / macs,
            "attention_share": self.attention_macs / macs,
            "linear_share": self.linear_macs / macs,
            "log_activations": math.log(max(self.activation_elements, 1)),
            "log_positional_params": math.log(max(self.positional_params, 1)),
        }


def _conv_kind(conv: nn.Module) -> str:
    if conv.groups > 1:
        return "conv_grouped_macs"
    return "conv_pointwise_macs" if all(k == 1 for k in conv.kernel_size) else "conv_dense_macs"


def _layer_macs(layer: nn.Module, out: torch.Tensor) -> int:
    """MACs of one conv/linear call from its output shape (bias adds are not MACs)."""
    if isinstance(layer, nn.Linear):
        return out.numel() * layer.in_features
    per_output = (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
    return out.numel() * per_output


def _weight_layer_tally(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    tally = dict(weight_layers=0, conv_dense_macs=0, conv_pointwise_macs=0, conv_grouped_macs=0,
                 linear_macs=0, activation_elements=0, positional_params=0)
    counted: set[int] = set()

    def hook(layer: nn.Module, _inputs, out) -> None:
        if not isinstance(out, torch.Tensor):
            return
        kind = "linear_macs" if isinstance(layer, nn.Linear) else _conv_kind(layer)
        tally[kind] += _layer_macs(layer, out) // max(out.shape[0], 1)
        tally["weight_layers"] += 1
        tally["activation_elements"] += out.numel() // max(out.shape[0], 1)
        channels = out.shape[-1] if isinstance(layer, nn.Linear) else out.shape[1]
        positions = out.numel() // max(out.shape[0] * channels, 1)
        if positions > 1 and id(layer) not in counted:  # a weight reused across positions, counted once
            counted.add(id(layer))
            tally["positional_params"] += layer.weight.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return tally


def arch_features(model: nn.Module, imgsz: int) -> ArchFeatures:
    """Features of ``model`` for one image of ``imgsz`` x ``imgsz`` (the model is left in eval mode)."""
    cost = count_cost(model, imgsz)
    attention = sum(v for op, v in cost.by_op.items() if op.startswith(_ATTENTION_OPS))
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tally = _weight_layer_tally(model, torch.zeros(1, 3, imgsz, imgsz, device=device))
    return ArchFeatures(imgsz=imgsz, macs=cost.macs, params=cost.params, attention_macs=attention, **tally)
