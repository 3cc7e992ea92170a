"""GhostNetV3: parameter counts (training and deploy form), MACs, feature shapes,
re-parameterisation equivalence and config validation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.ghostnetv3 import PRESETS, GhostNetV3Config, build
from nasbench.metrics.cost import count_cost
from tests.helpers import randomize_bn

torch.set_num_threads(1)

WIDTHS = {"ghostnetv3_050": 0.5, "ghostnetv3_100": 1.0, "ghostnetv3_130": 1.3, "ghostnetv3_160": 1.6}

# Training form (3 rep. branches + scale + identity BNs, 1000 classes). Cross-checked:
# equal to sum(p.numel()) of timm 1.0.31 `ghostnetv3_050/100/130/160` (8,129,028 for 1.0x);
# a timm model's state dict loads into ours by renaming keys and gives the same logits.
TRAIN_PARAMS = {
    "ghostnetv3_050": 3_395_384,
    "ghostnetv3_100": 8_129_028,
    "ghostnetv3_130": 12_217_720,
    "ghostnetv3_160": 17_275_700,
}
# Deploy form: every rep. conv is one biased conv and EVERY BN is folded. timm's
# `convert_to_deploy` gives 2,853,176 / 6,147,588 / 8,948,296 / 12,377,778 because it keeps
# the BNs of the stem, DFC, shortcut and 960w convs (2 params each channel instead of a
# 1-param bias); subtracting those channels (10,936 / 21,872 / 28,416 / 35,016) gives ours.
# Paper: 6.1M (1.0x), 8.9M (1.3x), 12.3M (1.6x).
DEPLOY_PARAMS = {
    "ghostnetv3_050": 2_842_240,
    "ghostnetv3_100": 6_125_716,
    "ghostnetv3_130": 8_919_880,
    "ghostnetv3_160": 12_342_762,
}
# REFERENCE.md section 4 (paper / iFormer Table 3 / timm-bench), MACs at 224.
PUBLISHED_GMACS = {"ghostnetv3_050": 0.05, "ghostnetv3_100": 0.17, "ghostnetv3_130": 0.27, "ghostnetv3_160": 0.40}

# ---------------------------------------------------------------------------------------
# Independent hand derivation from the published table (nothing imported from the model).

# (k, exp, out, SE ratio, stride) at width 1.0, from the official code / REFERENCE.md.
TABLE = [
    (3, 16, 16, 0, 1),
    (3, 48, 24, 0, 2), (3, 72, 24, 0, 1),
    (5, 72, 40, 0.25, 2), (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1),
    (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1),
]


def make_div4(v: float) -> int:
    """GhostNet channel rounding: nearest multiple of 4, never below 90% of v."""
    r = max(4, int(v + 2) // 4 * 4)
    return r + 4 if r < 0.9 * v else r


def conv_params(cin: int, cout: int, kh: int, kw: int, groups: int, deploy: bool) -> int:
    """Conv followed by BN (training form: weight + BN gamma/beta) or by nothing
    (deploy form: BN folded into a bias)."""
    weights = kh * kw * cin // groups * cout
    return weights + (cout if deploy else 2 * cout)


def rep_conv_params(cin: int, cout: int, k: int, groups: int, stride: int, branches: int, deploy: bool) -> int:
    """A re-parameterisable conv: one biased kxk conv when deployed; in training
    `branches` kxk Conv-BN + a 1x1 Conv-BN if k > 1 + an identity BN if shapes agree."""
    if deploy:
        return conv_params(cin, cout, k, k, groups, deploy=True)
    total = branches * conv_params(cin, cout, k, k, groups, deploy=False)
    if k > 1:
        total += conv_params(cin, cout, 1, 1, groups, deploy=False)
    if cin == cout and stride == 1:
        total += 2 * cin
    return total


def ghost_params(cin: int, cout: int, dfc: bool, branches: int, deploy: bool) -> int:
    half = math.ceil(cout / 2)
    total = rep_conv_params(cin, half, 1, 1, 1, branches, deploy)  # primary 1x1
    total += rep_conv_params(half, half, 3, half, 1, branches, deploy)  # cheap DW 3x3
    if dfc:  # 1x1 conv-BN, DW 1x5 conv-BN, DW 5x1 conv-BN
        total += conv_params(cin, cout, 1, 1, 1, deploy)
        total += 2 * conv_params(cout, cout, 1, 5, cout, deploy)
    return total


def derive_params(width: float, branches: int = 3, use_dfc: bool = True, deploy: bool = False) -> int:
    stem = make_div4(16 * width)
    total = conv_params(3, stem, 3, 3, 1, deploy)
    cin = stem
    for i, (k, exp, out, se, s) in enumerate(TABLE):
        mid, cout = make_div4(exp * width), make_div4(out * width)
        total += ghost_params(cin, mid, use_dfc and i >= 2, branches, deploy)  # DFC from layer_id 2
        if s > 1:
            total += rep_conv_params(mid, mid, k, mid, s, branches, deploy)
        if se > 0:
            r = make_div4(mid * se)
            total += mid * r + r + r * mid + mid  # two biased 1x1 convs
        total += ghost_params(mid, cout, False, branches, deploy)
        if not (cin == cout and s == 1):  # DW kxk conv-BN + 1x1 conv-BN
            total += conv_params(cin, cin, k, k, cin, deploy) + conv_params(cin, cout, 1, 1, 1, deploy)
        cin = cout
    final = make_div4(960 * width)
    total += conv_params(cin, final, 1, 1, 1, deploy)
    total += final * 1280 + 1280  # conv_head (biased, not width-scaled)
    total += 1280 * 1000 + 1000  # classifier
    return total


def meta_model(cfg: GhostNetV3Config) -> torch.nn.Module:
    """Shape-only model: counting params and MACs of the big presets costs nothing."""
    with torch.device("meta"):
        return build(cfg)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_params_training_and_deploy_form(name: str) -> None:
    model = meta_model(PRESETS[name])
    assert n_params(model) == derive_params(WIDTHS[name]) == TRAIN_PARAMS[name]
    fuse_for_deploy(model)
    assert n_params(model) == derive_params(WIDTHS[name], deploy=True) == DEPLOY_PARAMS[name]
    # No BN or branch survives the fold.
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_params_follow_knobs() -> None:
    cfg = dataclasses.replace(PRESETS["ghostnetv3_100"], num_conv_branches=1, use_dfc=False)
    model = meta_model(cfg)
    assert n_params(model) == derive_params(1.0, branches=1, use_dfc=False)
    fuse_for_deploy(model)
    assert n_params(model) == derive_params(1.0, branches=1, use_dfc=False, deploy=True)


@pytest.mark.parametrize("name", list(PRESETS))
def test_deploy_macs_match_published(name: str) -> None:
    model = fuse_for_deploy(meta_model(PRESETS[name]))
    macs = count_cost(model, 224).macs
    assert abs(macs / 1e9 - PUBLISHED_GMACS[name]) <= 0.05 * PUBLISHED_GMACS[name], macs


@pytest.mark.parametrize("name", ["ghostnetv3_050", "ghostnetv3_100"])
@pytest.mark.parametrize("imgsz", [32, 224, 256, 640])  # 32: proxy training size, 1-px deepest maps
def test_forward_features_shapes(name: str, imgsz: int) -> None:
    model = zoo.create(name).eval()
    w = WIDTHS[name]
    assert model.out_strides == (8, 16, 32)
    assert model.out_channels == (make_div4(40 * w), make_div4(112 * w), make_div4(160 * w))
    x = torch.randn(2, 3, imgsz, imgsz)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats[-1])
    assert len(feats) == 3
    for f, ch, stride in zip(feats, model.out_channels, model.out_strides):
        assert tuple(f.shape) == (2, ch, math.ceil(imgsz / stride), math.ceil(imgsz / stride))
    assert tuple(logits.shape) == (2, 1000)


def test_training_step_runs() -> None:
    model = zoo.create("ghostnetv3_050").train()
    logits = model(torch.randn(2, 3, 64, 64))
    logits.sum().backward()
    assert tuple(logits.shape) == (2, 1000)


def assert_fuse_preserves_output(model: torch.nn.Module, x: torch.Tensor) -> None:
    randomize_bn(model)
    model.eval()
    with torch.no_grad():
        before = model(x)
        before_feats = model.forward_features(x)
        fuse_for_deploy(model)
        after = model(x)
        after_feats = model.forward_features(x)
    for a, b in zip([before, *before_feats], [after, *after_feats]):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max(), (a - b).abs().max()


def test_fused_equals_unfused_preset() -> None:
    torch.manual_seed(0)
    # 100 px: odd map sizes (25, 13, 7, 4) exercise the DFC pool/upsample round trip.
    assert_fuse_preserves_output(zoo.create("ghostnetv3_050"), torch.randn(2, 3, 100, 100))


def test_fused_equals_unfused_with_primary_identity_branch() -> None:
    # Block 0 expands 16 -> 32, so the primary 1x1 maps 16 -> 16 channels and gets the
    # identity-BN branch (absent in the presets); one conv branch, DFC from block 0.
    blocks = (
        (3, 32, 16, 0.25, 1), (3, 48, 24, 0.0, 2), (5, 96, 48, 0.25, 2), (3, 96, 48, 0.0, 1), (5, 192, 64, 0.0, 2),
    )
    cfg = GhostNetV3Config(blocks=blocks, num_conv_branches=1, dfc_first_block=0, num_classes=10)
    model = build(cfg)
    assert model.blocks[0].ghost1.primary.skip is not None
    torch.manual_seed(0)
    assert_fuse_preserves_output(model, torch.randn(2, 3, 72, 88))


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"blocks": ((4, 16, 16, 0.0, 1), (3, 48, 24, 0.0, 2), (3, 72, 24, 0.0, 2))}, "kernel must be odd"),
        ({"blocks": ((3, 16, 16, 0.0, 3), (3, 48, 24, 0.0, 2), (3, 72, 24, 0.0, 2))}, "stride must be 1 or 2"),
        ({"blocks": ((3, 16, 16, 0.0, 1), (3, 48, 24, 0.0, 2))}, "three stride levels"),
        ({"blocks": ((3, 16, 16),)}, "expected \\(kernel, exp, out, se, stride\\)"),
        ({"num_conv_branches": 0}, "num_conv_branches must be >= 1"),
        ({"width": 0.0}, "width must be > 0"),
    ],
)
def test_validate_rejects_bad_config(knobs: dict, message: str) -> None:
    cfg = dataclasses.replace(GhostNetV3Config(), **knobs)
    with pytest.raises(ValueError, match=message):
        build(cfg)


# The registry-wide contract test (tests/test_registry_contract.py) checks every preset of
# these families against this hand derivation, so a new family cannot skip one.
TESTED_FAMILIES = ("ghostnetv3",)


def hand_params(preset: str) -> int:
    """The preset's parameter count (training form, 1000 classes) derived by hand above."""
    return derive_params(WIDTHS[preset])
