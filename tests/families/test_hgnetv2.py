"""HGNetv2 (RT-DETR-l's backbone): exact size, MACs, feature levels, deploy form, validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.hgnetv2 import PRESETS, HGNetV2Config, build
from nasbench.metrics.cost import count_cost
from tests.helpers import randomize_bn

torch.set_num_threads(1)

# A narrow, shallow config with every kind of block (plain and light, shortcuts) for fast forwards.
TINY = HGNetV2Config(
    stem_channels=(8, 16),
    mid_channels=(8, 16, 24, 32),
    out_channels=(16, 32, 48, 64),
    blocks=(1, 1, 2, 1),
    layers_per_block=(2, 2, 3, 2),
    kernel_sizes=(3, 3, 5, 5),
    light=(False, False, True, True),
)


def hgnetv2_params(cfg_table: dict, num_classes: int) -> int:
    """Parameter count from the config table alone (conv weights + BN gamma/beta)."""

    def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
        return k * k * (cin // groups) * cout + 2 * cout

    stem_mid, stem_out = cfg_table["stem"]
    total = (
        conv_bn(3, stem_mid, 3)  # stem1, 3x3 s2
        + conv_bn(stem_mid, stem_mid // 2, 2)  # stem2a, 2x2
        + conv_bn(stem_mid // 2, stem_mid, 2)  # stem2b, 2x2
        + conv_bn(2 * stem_mid, stem_mid, 3)  # stem3 on concat(pool, conv), 3x3 s2
        + conv_bn(stem_mid, stem_out, 1)  # stem4
    )
    cin = stem_out
    for i, (mid, out, blocks, layers, k, light) in enumerate(cfg_table["stages"]):
        if i > 0:
            total += conv_bn(cin, cin, 3, groups=cin)  # depthwise downsample
        for b in range(blocks):
            block_in = cin if b == 0 else out
            for j in range(layers):
                layer_in = block_in if j == 0 else mid
                if light:
                    total += conv_bn(layer_in, mid, 1) + conv_bn(mid, mid, k, groups=mid)
                else:
                    total += conv_bn(layer_in, mid, k)
            total += conv_bn(block_in + layers * mid, out // 2, 1)  # squeeze
            total += conv_bn(out // 2, out, 1)  # excite
        cin = out
    return total + (cin * num_classes + num_classes if num_classes else 0)


# rtdetr-l.yaml backbone: HGStem[32,48]; per stage (mid, out, blocks, layers, k, light).
HGNETV2_L_TABLE = {
    "stem": (32, 48),
    "stages": [
        (48, 128, 1, 6, 3, False),
        (96, 512, 1, 6, 3, False),
        (192, 1024, 3, 6, 5, True),
        (384, 2048, 1, 6, 5, True),
    ],
}

# Trunk (no classifier) = timm `hgnetv2_b4` minus its head (checked with timm 1.0.31:
# 19,796,680 total, 13,553,376 outside `head`) = Ultralytics rtdetr-l layers 0-9.
HGNETV2_L_TRUNK_PARAMS = 13_553_376
HGNETV2_L_PARAMS = 15_602_376  # + Linear(2048, 1000)


def test_params_exact_and_derived() -> None:
    model = build(PRESETS["hgnetv2_l"])
    counted = sum(p.numel() for p in model.parameters())
    assert hgnetv2_params(HGNETV2_L_TABLE, 1000) == HGNETV2_L_PARAMS
    assert hgnetv2_params(HGNETV2_L_TABLE, 0) == HGNETV2_L_TRUNK_PARAMS
    assert counted == HGNETV2_L_PARAMS
    trunk = build(dataclasses.replace(PRESETS["hgnetv2_l"], num_classes=0))
    assert sum(p.numel() for p in trunk.parameters()) == HGNETV2_L_TRUNK_PARAMS


def test_tiny_params_derived() -> None:
    table = {
        "stem": TINY.stem_channels,
        "stages": list(zip(TINY.mid_channels, TINY.out_channels, TINY.blocks, TINY.layers_per_block,
                           TINY.kernel_sizes, TINY.light)),
    }
    assert sum(p.numel() for p in build(TINY).parameters()) == hgnetv2_params(table, 1000)


def test_macs_at_native_size() -> None:
    # No classifier MACs are published for this backbone (RT-DETR reports only the whole
    # detector, tested in tests/detector/test_rtdetr.py). The trunk count equals timm
    # `hgnetv2_b4.forward_features` counted with the same counter (22,268,620,800 at 640;
    # 2,727,906,048 at 224); the classifier adds 2048*1000 MACs.
    model = build(PRESETS["hgnetv2_l"])
    cost = count_cost(model, 640)
    assert cost.counter == "flop_counter[meta]"
    assert cost.macs == 22_268_620_800 + 2048 * 1000
    assert count_cost(model, 224).macs == 2_727_906_048 + 2048 * 1000


@pytest.mark.parametrize("imgsz", [224, 256, 640])
def test_forward_features_tiny(imgsz: int) -> None:
    model = build(TINY).eval()
    x = torch.randn(2, 3, imgsz, imgsz)
    with torch.no_grad():
        levels = model.forward_features(x)
        logits = model(x)
    assert model.out_strides == (8, 16, 32)
    assert len(levels) == 3
    for f, c, s in zip(levels, model.out_channels, model.out_strides):
        assert tuple(f.shape) == (2, c, -(-imgsz // s), -(-imgsz // s))
    assert logits.shape == (2, 1000)


def test_forward_features_l() -> None:
    model = build(PRESETS["hgnetv2_l"]).eval()
    assert model.out_channels == (512, 1024, 2048) and model.out_strides == (8, 16, 32)
    with torch.no_grad():
        levels = model.forward_features(torch.randn(2, 3, 224, 224))
    assert [tuple(f.shape) for f in levels] == [(2, 512, 28, 28), (2, 1024, 14, 14), (2, 2048, 7, 7)]
    with torch.device("meta"):  # 640 shapes without the compute
        big = build(PRESETS["hgnetv2_l"])
        levels = big.forward_features(torch.empty(2, 3, 640, 640))
        logits = big(torch.empty(2, 3, 640, 640))
    assert [tuple(f.shape) for f in levels] == [(2, 512, 80, 80), (2, 1024, 40, 40), (2, 2048, 20, 20)]
    assert logits.shape == (2, 1000)


@pytest.mark.parametrize("cfg", [TINY, PRESETS["hgnetv2_l"]], ids=["tiny", "hgnetv2_l"])
def test_fused_equals_unfused(cfg: HGNetV2Config) -> None:
    torch.manual_seed(0)
    model = build(cfg).eval()
    randomize_bn(model)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref_levels, ref_logits = model.forward_features(x), model(x)
        fuse_for_deploy(model)
        levels, logits = model.forward_features(x), model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(ref_levels + [ref_logits], levels + [logits]):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_validate_rejects_bad_configs() -> None:
    with pytest.raises(ValueError, match="needs 4 per-stage values"):
        build(dataclasses.replace(TINY, blocks=(1, 1, 1)))
    with pytest.raises(ValueError, match="kernel_sizes must be odd"):
        build(dataclasses.replace(TINY, kernel_sizes=(3, 4, 5, 5)))
    with pytest.raises(ValueError, match="out_channels must be even"):
        build(dataclasses.replace(TINY, out_channels=(16, 32, 47, 64)))


def test_zoo_knows_the_preset() -> None:
    model = zoo.create("hgnetv2_l", num_classes=10)
    assert model.head.fc.out_features == 10


# The registry-wide contract test (tests/test_registry_contract.py) checks every preset of
# these families against this hand derivation, so a new family cannot skip one.
TESTED_FAMILIES = ("hgnetv2",)


def hand_params(preset: str) -> int:
    """The preset's parameter count (training form, 1000 classes) derived by hand above."""
    return {"hgnetv2_l": hgnetv2_params(HGNETV2_L_TABLE, 1000)}[preset]
