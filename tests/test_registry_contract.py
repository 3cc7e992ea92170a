"""One contract for every preset of every family, on the meta device (no weights, seconds for
the whole registry): three feature levels at the strides the backbone declares (and a
timm-style ``feature_info`` naming the module of each), logits of
the configured width, a counter that sees MACs, config -> YAML -> config round trip, and the
parameter count its family's test module derives by hand (``hand_params``). Then, with real
weights (about a minute for the registry on 2 cores): the deploy form gives the training
form's output."""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable

import pytest
import torch
from torch import nn

import tests.families
from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.layers import ConvNormAct
from nasbench.metrics.cost import count_cost, count_params
from tests.helpers import randomize_bn

PRESETS = sorted(zoo.all_presets())


def hand_derivations() -> dict[str, Callable[[str], int]]:
    """family -> the ``hand_params`` of the tests/families module that declares it in ``TESTED_FAMILIES``."""
    found = {}
    for info in pkgutil.iter_modules(tests.families.__path__):
        module = importlib.import_module(f"tests.families.{info.name}")
        found.update({family: module.hand_params for family in getattr(module, "TESTED_FAMILIES", ())})
    return found


HAND = hand_derivations()


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
    assert spec.family in HAND, (f"family {spec.family} has no tests/families module declaring it in TESTED_FAMILIES "
                                 "with a hand_params(preset) derivation")
    assert count_params(model)[0] == HAND[spec.family](name)


@pytest.mark.parametrize("name", PRESETS)
def test_every_deploy_form_gives_the_training_forms_output(name: str) -> None:
    spec = zoo.resolve(name)
    imgsz = zoo.all_families()[spec.family].native_imgsz
    torch.manual_seed(0)
    model = randomize_bn(spec.build()).eval()  # non-trivial statistics, so folding them matters
    x = torch.randn(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        trained = model(x)
        deployed = fuse_for_deploy(model)(x)
    assert (deployed - trained).abs().max() <= 1e-5 * trained.abs().max(), name
    # every folded Conv-BN with nothing after it is the bare conv now: no wrapper call per layer
    wrapped = [n for n, m in model.named_modules() if isinstance(m, ConvNormAct) and list(m.children()) == [m.conv]]
    assert wrapped == [], wrapped[:3]
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules()), name
