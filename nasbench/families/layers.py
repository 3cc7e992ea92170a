"""Building blocks shared by two or more families.

Family-specific blocks live in the family's own module; only what is genuinely shared
(conv+BN+act with BN folding, channel rounding, SE, the classifier head) is here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

ActFactory = Callable[[], nn.Module] | None


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without losing >10%.

    The rounding rule of MobileNetV2, which MobileViT, GhostNet and others inherit.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight, bias) of a layer equivalent to ``layer -> bn`` in eval mode.

    Works for conv weights [out, in/g, kh, kw] and linear weights [out, in].
    """
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    shape = (-1,) + (1,) * (weight.dim() - 1)
    fused_w = weight * scale.reshape(shape)
    conv_b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    fused_b = beta + (conv_b - bn.running_mean) * scale
    return fused_w, fused_b


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation, foldable into one biased conv."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        groups: int = 1,
        act: ActFactory = nn.SiLU,
        norm: bool = True,
        bias: bool | None = None,
        padding: int | tuple[int, int] | None = None,
        dilation: int = 1,
    ) -> None:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if padding is None:
            padding = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        conv_bias = (not norm) if bias is None else bias
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, k, stride, padding, dilation, groups, bias=conv_bias)
        )
        if norm:
            layers["bn"] = nn.BatchNorm2d(out_ch)
        if act is not None:
            layers["act"] = act()
        super().__init__(layers)

    def fuse(self) -> None:
        """Fold the BN into the conv (eval statistics); a no-op when already folded.

        The BN entry is removed, not replaced by an Identity: each module call costs
        microseconds in eager mode, and a small model has a hundred of these."""
        if "bn" not in self._modules:
            return
        w, b = fold_bn(self.conv.weight, self.conv.bias, self.bn)
        conv = self.conv
        fused = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            conv.padding, conv.dilation, conv.groups, bias=True,
        ).to(w.device, w.dtype)
        fused.weight.data.copy_(w.detach())
        fused.bias.data.copy_(b.detach())
        self.conv = fused
        del self.bn

    def deployed(self) -> nn.Module:
        """What ``fuse_for_deploy`` puts in this layer's place: the bare conv when nothing
        follows it (as timm's re-parameterisation does), else this layer."""
        return self.conv if len(self) == 1 else self  # the conv always comes first


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> act -> 1x1 expand -> gate."""

    def __init__(
        self,
        channels: int,
        reduced: int,
        act: Callable[[], nn.Module] = nn.ReLU,
        gate: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = act()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class ClassifierHead(nn.Module):
    """Global average pool -> dropout -> linear. ``num_classes=0`` gives pooled features."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc: nn.Module = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x.mean((2, 3))))
