"""One contract for every preset of every family, on the meta device (no weights, seconds for
the whole registry): three feature levels at the strides the backbone declares (and a
timm-style ``feature_info`` naming the module of each), logits of
the configured width, a counter that sees MACs, and config -> YAML -> config round trip.
Exact parameter counts and deploy-form equality are each family's own tests."""

from __future__ import annotations

import math

import pytest
import torch

from nasbench import zoo
from nasbench.metrics.cost import count_cost

PRESETS = sorted(zoo.all_presets())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_keeps_the_backbone_contract(name: str, tmp_path) -> None:
    spec = zoo.resolve(name)
    fam = zoo.all_families()[spec.family]
    model = spec.build_for_counting().eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, fam.native_imgsz, fam.native_imgsz, device=device)
    with torch.no_grad():
        levels = model.forward_features(x)
        logits = model(x)
    assert len(levels) == len(model.out_channels) == len(model.out_strides) == 3
    assert list(model.out_strides) == sorted(model.out_strides) and len(set(model.out_strides)) == 3
    for level, channels, stride in zip(levels, model.out_channels, model.out_strides):
        assert level.shape[:2] == (1, channels), name
        assert level.shape[-1] == math.ceil(fam.native_imgsz / stride), (name, stride)
    info = model.feature_info(fam.native_imgsz)  # timm-style, generated from the forward itself
    assert [i["num_chs"] for i in info] == list(model.out_channels)
    assert [i["reduction"] for i in info] == list(model.out_strides)
    modules = {n for n, _ in model.named_modules() if n}
    assert all(i["module"] in modules for i in info), info
    if getattr(spec.config, "num_classes", 0):
        assert logits.shape == (1, spec.config.num_classes)
    assert count_cost(model, fam.native_imgsz).macs > 0
    path = tmp_path / f"{name}.yaml"
    path.write_text(zoo.spec_to_yaml(spec))
    assert zoo.resolve(str(path)).config == spec.config
