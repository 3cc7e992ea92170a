"""Mobile-Former family: exact params, MACs vs the paper's names, feature levels, deploy form.

Cross-checks behind the literals (run outside the repo, not part of this suite): the
official AAboys/MobileFormer ``mobile_former.py`` (plain PyTorch) was instantiated for all
seven variants; its parameter counts equal PARAMS below and torch's FlopCounterMode gives
exactly OFFICIAL_MACS on it at 224x224. With its random weights loaded into our models
(a 1:1 renaming of the state dict, strict load) the logits and the stride-32 features
agreed to within ~1e-6 relative for every preset.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nasbench.families.base import config_from_dict, config_to_dict, fuse_for_deploy
from nasbench.families.mobileformer import PRESETS, DynamicReLU, MobileFormerConfig, build
from nasbench.metrics.cost import count_cost
from tests.helpers import assert_levels_and_logits, randomize_bn

torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------
# The published tables, transcribed from the official mobile_former.py in its own format
# (block, e1, c, n, s, e2); independent of the model code.
ROWS_508M = [("DnaBlock3", 2, 24, 1, 1, 0), ("DnaBlock3", 6, 40, 1, 2, 4), ("DnaBlock", 3, 40, 1, 1, 3),
             ("DnaBlock3", 6, 72, 1, 2, 4), ("DnaBlock", 3, 72, 1, 1, 3), ("DnaBlock3", 6, 128, 1, 2, 4),
             ("DnaBlock", 4, 128, 1, 1, 4), ("DnaBlock", 6, 176, 1, 1, 4), ("DnaBlock", 6, 176, 1, 1, 4),
             ("DnaBlock3", 6, 240, 1, 2, 4), ("DnaBlock", 6, 240, 1, 1, 4), ("DnaBlock", 6, 240, 1, 1, 4)]
ROWS_294M = [("DnaBlock3", 2, 16, 1, 1, 0), ("DnaBlock3", 6, 24, 1, 2, 4), ("DnaBlock", 4, 24, 1, 1, 4),
             ("DnaBlock3", 6, 48, 1, 2, 4), ("DnaBlock", 4, 48, 1, 1, 4), ("DnaBlock3", 6, 96, 1, 2, 4),
             ("DnaBlock", 4, 96, 1, 1, 4), ("DnaBlock", 6, 128, 1, 1, 4), ("DnaBlock", 6, 128, 1, 1, 4),
             ("DnaBlock3", 6, 192, 1, 2, 4), ("DnaBlock", 6, 192, 1, 1, 4), ("DnaBlock", 6, 192, 1, 1, 4)]
ROWS_214M = [("DnaBlock3", 2, 12, 1, 1, 0), ("DnaBlock3", 6, 20, 1, 2, 4), ("DnaBlock", 3, 20, 1, 1, 4),
             ("DnaBlock3", 6, 40, 1, 2, 4), ("DnaBlock", 4, 40, 1, 1, 4), ("DnaBlock3", 6, 80, 1, 2, 4),
             ("DnaBlock", 4, 80, 1, 1, 4), ("DnaBlock", 6, 112, 1, 1, 4), ("DnaBlock", 6, 112, 1, 1, 4),
             ("DnaBlock3", 6, 160, 1, 2, 4), ("DnaBlock", 6, 160, 1, 1, 4), ("DnaBlock", 6, 160, 1, 1, 4)]
ROWS_151M = [("DnaBlock3", 2, 12, 1, 1, 0), ("DnaBlock3", 6, 16, 1, 2, 4), ("DnaBlock", 3, 16, 1, 1, 3),
             ("DnaBlock3", 6, 32, 1, 2, 4), ("DnaBlock", 3, 32, 1, 1, 3), ("DnaBlock3", 6, 64, 1, 2, 4),
             ("DnaBlock", 4, 64, 1, 1, 4), ("DnaBlock", 6, 88, 1, 1, 4), ("DnaBlock", 6, 88, 1, 1, 4),
             ("DnaBlock3", 6, 128, 1, 2, 4), ("DnaBlock", 6, 128, 1, 1, 4), ("DnaBlock", 6, 128, 1, 1, 4)]
ROWS_96M = [("DnaBlock3", 2, 12, 1, 1, 0), ("DnaBlock3", 6, 16, 1, 2, 4), ("DnaBlock3", 6, 32, 1, 2, 4),
            ("DnaBlock", 3, 32, 1, 1, 3), ("DnaBlock3", 6, 64, 1, 2, 4), ("DnaBlock", 4, 64, 1, 1, 4),
            ("DnaBlock", 6, 88, 1, 1, 4), ("DnaBlock3", 6, 128, 1, 2, 4), ("DnaBlock", 6, 128, 1, 1, 4)]
ROWS_52M = [("DnaBlock3", 3, 12, 1, 2, 0), ("DnaBlock", 3, 12, 1, 1, 3), ("DnaBlock3", 6, 24, 1, 2, 4),
            ("DnaBlock", 3, 24, 1, 1, 3), ("DnaBlock3", 6, 48, 1, 2, 4), ("DnaBlock", 4, 48, 1, 1, 4),
            ("DnaBlock", 6, 64, 1, 1, 4), ("DnaBlock3", 6, 96, 1, 2, 4), ("DnaBlock", 6, 96, 1, 1, 4)]

# name: (rows, stem, tokens, token_dim, head_hidden, group_num, paper params, paper MAdds)
TABLE = {
    "mobileformer_26m": (ROWS_52M, 8, 3, 128, 1024, 4, 3.2e6, 26e6),
    "mobileformer_52m": (ROWS_52M, 8, 3, 128, 1024, 1, 3.5e6, 52e6),
    "mobileformer_96m": (ROWS_96M, 12, 4, 128, 1280, 1, 4.6e6, 96e6),
    "mobileformer_151m": (ROWS_151M, 12, 6, 192, 1280, 1, 7.6e6, 151e6),
    "mobileformer_214m": (ROWS_214M, 12, 6, 192, 1600, 1, 9.4e6, 214e6),
    "mobileformer_294m": (ROWS_294M, 16, 6, 192, 1920, 1, 11.4e6, 294e6),
    "mobileformer_508m": (ROWS_508M, 24, 6, 192, 1920, 1, 14.0e6, 508e6),
}

# Exact counts with a 1000-class head; equal to the official model's (see module docstring).
PARAMS = {
    "mobileformer_26m": 3_232_788,
    "mobileformer_52m": 3_469_092,
    "mobileformer_96m": 4_585_252,
    "mobileformer_151m": 7_595_828,
    "mobileformer_214m": 9_425_920,
    "mobileformer_294m": 11_422_648,
    "mobileformer_508m": 13_976_976,
}

# FlopCounterMode alone at 224 (no element-wise op); the same on the official model.
OFFICIAL_MACS = {
    "mobileformer_26m": 23_550_208,
    "mobileformer_52m": 49_290_496,
    "mobileformer_96m": 92_017_040,
    "mobileformer_151m": 146_249_168,
    "mobileformer_214m": 208_374_240,
    "mobileformer_294m": 286_732_160,
    "mobileformer_508m": 498_467_680,
}


def expanded(rows):
    """One (block, e1, c, stride, e2) per block: repeats get stride 1."""
    return [(b, e1, c, s if i == 0 else 1, e2) for b, e1, c, n, s, e2 in rows for i in range(n)]


# ---------------------------------------------------------------------------------------
# Hand derivation of the parameter count from the table.
def conv_bn(c_in, c_out, k, groups=1):
    return k * k * (c_in // groups) * c_out + 2 * c_out  # bias-free conv + BN (gamma, beta)


def linear(n_in, n_out):
    return n_in * n_out + n_out


def derive_params(name, classes=1000, ffn_ratio=2, reduction=4, head_exp=6):
    rows, stem, tokens, d, hidden, g = TABLE[name][:6]
    dyrelu = lambda c: linear(d, d // reduction) + linear(d // reduction, 2 * c)  # noqa: E731
    mobile_to_former = lambda c: 2 * linear(d, c) + linear(c, d) + 2 * d  # q, gate, proj, LN  # noqa: E731
    former = 2 * linear(d, d) + 2 * d + linear(d, ffn_ratio * d) + linear(ffn_ratio * d, d) + 2 * d
    former_to_mobile = lambda c: 2 * linear(d, c)  # k, v  # noqa: E731
    total = tokens * d + conv_bn(3, stem, 3)
    c_in = stem
    for block, e1, c, _, e2 in expanded(rows):
        if e2 == 0:  # conv only: dw (x e1) -> pw
            total += conv_bn(c_in, c_in * e1, 3, c_in) + conv_bn(c_in * e1, c, 1, g)
        else:
            if block == "DnaBlock3":  # dw (x e1) -> pw -> dw (x e2) -> pw
                h1, h2 = c_in * e1, c * e2
                total += conv_bn(c_in, h1, 3, c_in) + dyrelu(h1) + conv_bn(h1, c, 1, g)
                total += conv_bn(c, h2, 3, c) + dyrelu(h2) + conv_bn(h2, c, 1, g)
            else:  # pw (x e1) -> dw -> pw
                h = c_in * e1
                total += conv_bn(c_in, h, 1, g) + dyrelu(h) + conv_bn(h, h, 3, h) + dyrelu(h) + conv_bn(h, c, 1, g)
            total += mobile_to_former(c_in) + former + former_to_mobile(c)
        c_in = c
    wide = head_exp * c_in
    total += mobile_to_former(c_in) + conv_bn(c_in, wide, 1, g)
    total += linear(wide + d, hidden) + 2 * hidden + linear(hidden, classes)
    return total


# The same arithmetic written out block by block for 52M and 294M (d = token dim).
def _dyrelu(d, c):  # token 0 -> d/4 -> 2c slopes
    return (d * (d // 4) + d // 4) + (d // 4 * 2 * c + 2 * c)


def _bridges(d, ci, co):  # Mobile->Former (q, gate, proj, LN) + Former->Mobile (k, v)
    return (2 * (d * ci + ci) + (ci * d + d) + 2 * d) + 2 * (d * co + co)


def _former(d):  # q, proj, LN, FFN (x2), LN
    return 2 * (d * d + d) + 2 * d + (d * 2 * d + 2 * d) + (2 * d * d + d) + 2 * d


def _dna(d, ci, e, co):  # pw -> dw -> pw, two dynamic ReLUs on ci * e channels, + bridges + Former
    h = ci * e
    return (ci * h + 2 * h) + (9 * h + 2 * h) + (h * co + 2 * co) + 2 * _dyrelu(d, h) + _bridges(d, ci, co) + _former(d)


def _dna3(d, ci, e1, co, e2):  # dw (x e1) -> pw -> dw (x e2) -> pw, + bridges + Former
    h1, h2 = ci * e1, co * e2
    return ((9 * h1 + 2 * h1) + (h1 * co + 2 * co) + (9 * h2 + 2 * h2) + (h2 * co + 2 * co)
            + _dyrelu(d, h1) + _dyrelu(d, h2) + _bridges(d, ci, co) + _former(d))


def _head(d, c, hidden):  # final bridge, 1x1 c -> 6c + BN, Linear(6c + d -> hidden) + BN1d, classifier
    return (2 * (d * c + c) + c * d + d + 2 * d) + (c * 6 * c + 12 * c) + ((6 * c + d) * hidden + 3 * hidden) \
        + (hidden * 1000 + 1000)


def test_hand_derivation_spelled_out_for_52m_and_294m():
    assert _former(128) == 99_456 and _former(192) == 222_912
    # 52M: 3 tokens x 128, stem 8, first block conv-only dw 8->24 (x3, s2) + pw 24->12.
    d = 128
    p52 = (3 * d + (3 * 9 * 8 + 16) + (9 * 24 + 48) + (24 * 12 + 24)
           + _dna(d, 12, 3, 12) + _dna3(d, 12, 6, 24, 4) + _dna(d, 24, 3, 24) + _dna3(d, 24, 6, 48, 4)
           + _dna(d, 48, 4, 48) + _dna(d, 48, 6, 64) + _dna3(d, 64, 6, 96, 4) + _dna(d, 96, 6, 96)
           + _head(d, 96, 1024))
    assert p52 == derive_params("mobileformer_52m") == PARAMS["mobileformer_52m"]
    # 294M: 6 tokens x 192, stem 16, first block conv-only dw 16->32 (x2) + pw 32->16.
    d = 192
    p294 = (6 * d + (3 * 9 * 16 + 32) + (9 * 32 + 64) + (32 * 16 + 32)
            + _dna3(d, 16, 6, 24, 4) + _dna(d, 24, 4, 24) + _dna3(d, 24, 6, 48, 4) + _dna(d, 48, 4, 48)
            + _dna3(d, 48, 6, 96, 4) + _dna(d, 96, 4, 96) + _dna(d, 96, 6, 128) + _dna(d, 128, 6, 128)
            + _dna3(d, 128, 6, 192, 4) + _dna(d, 192, 6, 192) + _dna(d, 192, 6, 192)
            + _head(d, 192, 1920))
    assert _head(192, 192, 1920) - (2 * (192 * 192 + 192) + 192 * 192 + 3 * 192) == 4_730_728  # classifier part
    assert p294 == derive_params("mobileformer_294m") == PARAMS["mobileformer_294m"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_params_exact(name):
    with torch.device("meta"):
        model = build(PRESETS[name])
    n = sum(p.numel() for p in model.parameters())
    assert n == derive_params(name) == PARAMS[name]
    assert abs(n - TABLE[name][6]) <= 0.05e6  # the paper's one-decimal figure


# ---------------------------------------------------------------------------------------
# MACs. The paper's names count the two multiplies per activation of each dynamic ReLU
# (max(a1*x, a2*x)), and so does count_cost (the one element-wise exception). Derived here
# from the table: the widths each dynamic ReLU sees, at the resolution it runs at.
def dyrelu_multiplies(name, imgsz=224):
    rows, stem = TABLE[name][0], TABLE[name][1]
    side = -(-imgsz // 2)  # after the stride-2 stem (3x3 convs with padding 1: ceil)
    c_in, total = stem, 0
    for block, e1, c, s, e2 in expanded(rows):
        out = -(-side // s)
        if e2:
            if block == "DnaBlock3":  # both activations after the strided dw
                total += (c_in * e1 + c * e2) * out * out
            else:  # after the pw (input side) and after the strided dw
                total += c_in * e1 * (side * side + out * out)
        c_in, side = c, out
    return 2 * total


# count_cost at 224, batch 1: OFFICIAL_MACS + the dynamic-ReLU multiplies, which
# DynamicReLU declares (elementwise_macs). Gaps to the names: 26M -3.13%, 52M -2.06%,
# 96M -1.61%, 151M -0.77%, 214M -0.51%, 294M -0.51%, 508M -0.33% (without the multiplies:
# -9.4% ... -1.9%).
MACS = {
    "mobileformer_26m": 25_187_200,
    "mobileformer_52m": 50_927_488,
    "mobileformer_96m": 94_452_144,
    "mobileformer_151m": 149_850_864,
    "mobileformer_214m": 212_899_488,
    "mobileformer_294m": 292_489_856,
    "mobileformer_508m": 506_348_448,
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_macs_match_official_and_paper_name(name):
    cost = count_cost(build(PRESETS[name]), 224)
    assert cost.counter == "flop_counter[meta]"
    declared = cost.by_op["DynamicReLU (element-wise)"]
    assert declared == dyrelu_multiplies(name)  # the hand derivation from the table
    assert cost.macs - declared == OFFICIAL_MACS[name]
    assert cost.macs == MACS[name]
    paper = TABLE[name][7]
    assert -0.05 < cost.macs / paper - 1 < 0, (name, cost.macs)


class ReadsValues(torch.nn.Module):
    """Wraps a model so that it cannot run on meta: count_cost counts it on the CPU."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        if x.abs().sum().item() < 0:  # data-dependent: impossible on meta
            return x
        return self.model(x)


def test_macs_on_the_cpu_fallback():
    cost = count_cost(ReadsValues(build(PRESETS["mobileformer_26m"])), 224)
    assert cost.counter == "flop_counter[cpu]"
    assert cost.macs == MACS["mobileformer_26m"]
    assert cost.by_op["DynamicReLU (element-wise)"] == dyrelu_multiplies("mobileformer_26m")


class OneDynamicReLU(torch.nn.Module):
    """A DynamicReLU on the input map, its token a learned parameter."""

    def __init__(self, channels, token_dim):
        super().__init__()
        self.token = torch.nn.Parameter(torch.zeros(1, token_dim))
        self.act = DynamicReLU(channels, token_dim, reduction=4)

    def forward(self, x):
        return self.act(x, self.token.expand(x.shape[0], -1))


@pytest.mark.parametrize("on_cpu", [False, True])
def test_dynamic_relu_macs_by_hand(on_cpu):
    c, d, h, w, batch = 24, 128, 14, 10, 2
    model = OneDynamicReLU(c, d)
    cost = count_cost(ReadsValues(model) if on_cpu else model, (h, w), batch=batch, in_chans=c)
    assert cost.counter == ("flop_counter[cpu]" if on_cpu else "flop_counter[meta]")
    slopes = 2 * c * h * w  # per sample: a1*x and a2*x per element; the max is not a MAC
    mlp = d * (d // 4) + (d // 4) * (2 * c)  # token -> d/4 -> 2c slopes
    assert cost.by_op["DynamicReLU (element-wise)"] == batch * slopes == 13_440
    act = "ReadsValues.model.act" if on_cpu else "OneDynamicReLU.act"
    assert cost.by_module[act] == cost.macs == batch * (slopes + mlp) == 24_704


def attention_macs(name, imgsz=224):
    """QK^T and AV of both bridges and the Former in every bridged block, plus the final
    Mobile->Former bridge: 2 products x tokens x items x channels each."""
    rows, stem, tokens, d = TABLE[name][:4]
    side, c_in, total = -(-imgsz // 2), stem, 0
    for _, _, c, s, e2 in expanded(rows):
        out = -(-side // s)
        if e2:
            total += 2 * tokens * side * side * c_in  # Mobile->Former on the block input
            total += 2 * tokens * tokens * d  # Former self-attention
            total += 2 * tokens * out * out * c  # Former->Mobile on the block output
        c_in, side = c, out
    return total + 2 * tokens * side * side * c_in


@pytest.mark.parametrize("name", ["mobileformer_52m", "mobileformer_294m"])
def test_bridge_attention_is_counted(name):
    cost = count_cost(build(PRESETS[name]), 224)
    assert cost.by_op["aten.bmm"] == attention_macs(name)  # 52M: 1,636,608


# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mobileformer_26m", "mobileformer_52m"])
@pytest.mark.parametrize("imgsz", [224, 256, 640])
def test_feature_levels(name, imgsz):
    model = build(PRESETS[name]).eval()
    assert model.out_strides == (8, 16, 32)
    assert model.out_channels == (24, 64, 96)
    assert_levels_and_logits(model, 2, imgsz)


def test_out_channels_of_all_presets():
    expected = {"mobileformer_96m": (32, 88, 128), "mobileformer_151m": (32, 88, 128),
                "mobileformer_214m": (40, 112, 160), "mobileformer_294m": (48, 128, 192),
                "mobileformer_508m": (72, 176, 240)}
    for name, channels in expected.items():
        with torch.device("meta"):
            model = build(PRESETS[name])
        assert model.out_channels == channels and model.out_strides == (8, 16, 32)


@pytest.mark.parametrize("name", ["mobileformer_26m", "mobileformer_96m"])
def test_fused_equals_unfused(name):
    torch.manual_seed(0)
    model = build(PRESETS[name]).eval()
    with torch.no_grad():
        randomize_bn(model)
        x = torch.randn(2, 3, 160, 160)
        ref_levels, ref_logits = model.forward_features(x), model(x)
        fuse_for_deploy(model)
        levels, logits = model.forward_features(x), model(x)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)) for m in model.modules())
    for a, b in zip(ref_levels + [ref_logits], levels + [logits]):
        assert (a - b).abs().max() <= 1e-4 * max(1.0, a.abs().max().item())


def test_validate_rejects_bad_configs():
    good = PRESETS["mobileformer_294m"]
    with pytest.raises(ValueError, match="block_channels has 11 values"):
        dataclasses.replace(good, block_channels=good.block_channels[:-1]).validate()
    with pytest.raises(ValueError, match="bridge_heads"):
        dataclasses.replace(good, bridge_heads=5).validate()
    with pytest.raises(ValueError, match="former_heads"):
        dataclasses.replace(good, former_heads=5).validate()
    with pytest.raises(ValueError, match="unknown block type"):
        dataclasses.replace(good, block_types=("mbconv",) + good.block_types[1:]).validate()
    with pytest.raises(ValueError, match="group_num"):
        dataclasses.replace(good, group_num=7).validate()
    with pytest.raises(ValueError, match="three stride levels"):
        dataclasses.replace(good, block_strides=(1,) * 12).validate()
    with pytest.raises(ValueError):
        build(dataclasses.replace(good, bridge_heads=5))


def test_config_roundtrip_and_defaults():
    assert MobileFormerConfig() == PRESETS["mobileformer_294m"]
    for cfg in PRESETS.values():
        cfg.validate()
        assert config_from_dict(MobileFormerConfig, config_to_dict(cfg)) == cfg
        hash(cfg)


def test_searched_variant_builds_and_runs():
    # A config off the presets: other token count/dim, head counts, FFN ratio and head widths.
    cfg = dataclasses.replace(
        PRESETS["mobileformer_52m"], token_count=2, token_dim=96, bridge_heads=4, former_heads=2,
        former_ffn_ratio=3, head_expansion=4, head_hidden=512, num_classes=10,
    )
    model = build(cfg).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 10)


# The registry-wide contract test (tests/test_registry_contract.py) checks every preset of
# these families against this hand derivation, so a new family cannot skip one.
TESTED_FAMILIES = ("mobileformer",)


def hand_params(preset: str) -> int:
    """The preset's parameter count (training form, 1000 classes) derived by hand above."""
    return derive_params(preset)
