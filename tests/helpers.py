"""Small helpers shared by several test files."""

from __future__ import annotations

import torch
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine values (so folding matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return model


def assert_levels_and_logits(model: nn.Module, batch: int, imgsz: int, num_classes: int = 1000) -> None:
    """forward_features gives three levels whose shapes match out_channels/out_strides
    (convs with padding round sizes up); forward gives [batch, num_classes] logits."""
    x = torch.randn(batch, 3, imgsz, imgsz)
    with torch.no_grad():
        levels = model.forward_features(x)
        logits = model(x)
    assert len(levels) == 3
    for f, ch, stride in zip(levels, model.out_channels, model.out_strides):
        assert f.shape == (batch, ch, -(-imgsz // stride), -(-imgsz // stride))
    assert logits.shape == (batch, num_classes)


# A tiny MobileViT search space: cheap to build and time at 64 px.
TINY_SPACE = {  # cheap to build and time at 64 px
    "family": "mobilevit",
    "base": "mobilevit_xxs",
    "imgsz": 64,
    "presets": ["mobilevit_xxs"],
    "knobs": {
        "width": {"choices": [0.5, 1.0], "scale": ["stage_channels"]},
        "transformer_blocks": {"int": [1, 2], "per_stage": 3},
    },
}
