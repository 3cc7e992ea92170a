"""MobileViT v1/v2: exact parameter counts derived by hand from the published tables,
MACs against the published figures, feature levels at several input sizes."""

from __future__ import annotations

import pytest
import torch

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.mobilevit import MobileViTConfig, MobileViTV2Config
from nasbench.metrics.cost import count_cost
from tests.helpers import randomize_bn


# ---------------------------------------------------------------- hand derivation
# Independent of the model code: only the published configuration (REFERENCE.md §1/§2)
# and the parameter arithmetic of each layer type.
def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return k * k * cin // groups * cout + 2 * cout  # conv (no bias) + BN gamma/beta


def mv2(cin: int, cout: int, expansion: int) -> int:
    hidden = cin * expansion  # a multiple of 8 for every published config
    expand = conv_bn(cin, hidden, 1) if expansion != 1 else 0
    return expand + conv_bn(hidden, hidden, 3, groups=hidden) + conv_bn(hidden, cout, 1)


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def v1_transformer(d: int, ffn: int) -> int:
    return 2 * d + linear(d, 3 * d) + linear(d, d) + 2 * d + linear(d, ffn) + linear(ffn, d)


def v1_block(c: int, d: int, layers: int) -> int:
    local = conv_bn(c, c, 3) + c * d
    global_rep = layers * v1_transformer(d, 2 * d) + 2 * d
    return local + global_rep + conv_bn(d, c, 1) + conv_bn(2 * c, c, 3)


def v1_params(channels, dims, expansion, classes=1000) -> int:
    c1, c2, c3, c4, c5 = channels
    total = conv_bn(3, 16, 3) + mv2(16, c1, expansion)
    total += mv2(c1, c2, expansion) + 2 * mv2(c2, c2, expansion)
    for cin, c, d, layers in ((c2, c3, dims[0], 2), (c3, c4, dims[1], 4), (c4, c5, dims[2], 3)):
        total += mv2(cin, c, expansion) + v1_block(c, d, layers)
    exp = min(4 * c5, 960)
    return total + conv_bn(c5, exp, 1) + linear(exp, classes)


def v2_block(c: int, d: int, layers: int) -> int:
    ffn = 2 * d // 16 * 16
    layer = 2 * d + linear(d, 1 + 2 * d) + linear(d, d) + 2 * d + linear(d, ffn) + linear(ffn, d)
    return conv_bn(c, c, 3, groups=c) + c * d + layers * layer + 2 * d + conv_bn(d, c, 1)


def v2_params(stem, channels, dims, classes=1000) -> int:
    c1, c2, c3, c4, c5 = channels
    total = conv_bn(3, stem, 3) + mv2(stem, c1, 2) + mv2(c1, c2, 2) + mv2(c2, c2, 2)
    for cin, c, d, layers in ((c2, c3, dims[0], 2), (c3, c4, dims[1], 4), (c4, c5, dims[2], 3)):
        total += mv2(cin, c, 2) + v2_block(c, d, layers)
    return total + linear(c5, classes)


# preset: (derivation, exact integer; cross-checked with timm 1.0.31 / ml-cvnets counts)
V1 = {
    "mobilevit_xxs": (v1_params((16, 24, 48, 64, 80), (64, 80, 96), 2), 1_272_024),
    "mobilevit_xs": (v1_params((32, 48, 64, 80, 96), (96, 120, 144), 4), 2_317_848),
    "mobilevit_s": (v1_params((32, 64, 96, 128, 160), (144, 192, 240), 4), 5_578_632),
}
_V2_TABLE = {  # width: (stem, L1..L5, attention dims) from REFERENCE.md §2
    "050": (16, (32, 64, 128, 192, 256), (64, 96, 128), 1_370_593),
    "075": (24, (48, 96, 192, 288, 384), (96, 144, 192), 2_866_009),
    "100": (32, (64, 128, 256, 384, 512), (128, 192, 256), 4_901_841),
    "125": (40, (80, 160, 320, 480, 640), (160, 240, 320), 7_478_089),
    "150": (48, (96, 192, 384, 576, 768), (192, 288, 384), 10_594_753),
    "175": (56, (112, 224, 448, 672, 896), (224, 336, 448), 14_251_833),
    "200": (64, (128, 256, 512, 768, 1024), (256, 384, 512), 18_449_329),
}
V2 = {f"mobilevitv2_{w}": (v2_params(s, c, d), n) for w, (s, c, d, n) in _V2_TABLE.items()}

# Published GMACs at 256x256 (timm benchmark, fvcore; REFERENCE.md §1/§2).
PUBLISHED_GMACS = {
    "mobilevit_xxs": 0.42, "mobilevit_xs": 1.05, "mobilevit_s": 2.03,
    "mobilevitv2_050": 0.48, "mobilevitv2_075": 1.05, "mobilevitv2_100": 1.84, "mobilevitv2_125": 2.86,
    "mobilevitv2_150": 4.09, "mobilevitv2_175": 5.54, "mobilevitv2_200": 7.22,
}


@pytest.mark.parametrize("name", sorted({**V1, **V2}))
def test_exact_param_count(name: str) -> None:
    derived, literal = {**V1, **V2}[name]
    assert derived == literal
    model = zoo.create(name)
    assert sum(p.numel() for p in model.parameters()) == literal


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_close_to_published(name: str) -> None:
    cost = count_cost(zoo.create(name), 256)
    published = PUBLISHED_GMACS[name] * 1e9
    # Within 5%; the published figures are rounded to 0.01 G and come from fvcore, which
    # also counts normalisation layers that are not MACs (see docs/measurements.md).
    assert abs(cost.macs - published) / published < 0.05, cost.macs
    assert cost.flops == 2 * cost.macs


def test_one_transformer_layer_costs_its_hand_count() -> None:
    """Adding one transformer layer to mobilevit_s's L3 adds exactly its linear + attention
    MACs at 256 px: the L3 map is 32x32, patch 2x2 -> P=4 sequences of N=256 tokens, d=144."""
    base = zoo.resolve("mobilevit_s").config
    deeper = MobileViTConfig(**{**base.__dict__, "transformer_blocks": (3, 4, 3)})
    fam = zoo.all_families()["mobilevit"]
    delta = count_cost(fam.build(deeper), 256).macs - count_cost(fam.build(base), 256).macs
    tokens, d, ffn, p, n = 4 * 256, 144, 288, 4, 256
    linear_macs = tokens * (d * 3 * d + d * d + 2 * d * ffn)
    attention_macs = 2 * p * n * n * d  # QK^T and AV
    assert delta == linear_macs + attention_macs == 245_366_784


@pytest.mark.parametrize("name", ["mobilevit_xxs", "mobilevitv2_050"])
@pytest.mark.parametrize("imgsz", [224, 256, 640, 250])
def test_feature_levels(name: str, imgsz: int) -> None:
    model = zoo.create(name).eval()
    x = torch.randn(2, 3, imgsz, imgsz)
    with torch.inference_mode():
        feats = model.forward_features(x)
        logits = model(x)
    assert len(feats) == 3 and model.out_strides == (8, 16, 32)
    for f, ch, stride in zip(feats, model.out_channels, model.out_strides):
        expected = -(-imgsz // stride)  # convs with padding round up
        assert f.shape == (2, ch, expected, expected)
    assert logits.shape == (2, 1000)


def test_fused_equals_unfused() -> None:
    torch.manual_seed(0)
    model = zoo.create("mobilevit_xxs")
    randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        before = model(x)
        fuse_for_deploy(model)
        after = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (before - after).abs().max() <= 1e-4 * before.abs().max()


def test_knobs_change_the_architecture() -> None:
    cfg = MobileViTConfig(heads=2, patch_size=(4, 4), transformer_blocks=(1, 1, 1))
    model = zoo.all_families()["mobilevit"].build(cfg).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 1000)
    assert count_cost(model, 256).macs < count_cost(zoo.create("mobilevit_s"), 256).macs


@pytest.mark.parametrize(
    "cfg, message",
    [
        (MobileViTConfig(heads=5), "not divisible by heads"),
        (MobileViTConfig(stage_channels=(16, 24, 48, 64)), "stage_channels needs 5 values"),
        (MobileViTV2Config(width_multiplier=0.0), "width_multiplier"),
        (MobileViTV2Config(patch_size=(0, 2)), "patch_size"),
    ],
)
def test_validate_rejects_bad_configs(cfg, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cfg.validate()


# The registry-wide contract test (tests/test_registry_contract.py) checks every preset of
# these families against this hand derivation, so a new family cannot skip one.
TESTED_FAMILIES = ("mobilevit", "mobilevitv2")


def hand_params(preset: str) -> int:
    """The preset's parameter count (training form, 1000 classes) derived by hand above."""
    return {**V1, **V2}[preset][0]
