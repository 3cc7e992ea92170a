"""EfficientViT-M family: exact params, MACs, shapes, deploy form, config checks, seed 004."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import torch
from torch import nn

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.efficientvit import (
    PRESETS,
    CascadedGroupAttention,
    EfficientViTConfig,
    attend,
    build,
    relative_offset_index,
)
from nasbench.metrics.cost import count_cost
from tests.helpers import assert_levels_and_logits, randomize_bn

# Published table (Cream EfficientViT/classification/README.md + model/build.py):
# name: (embed dims, depths, heads, query kernels, published MACs in millions).
TABLE = {
    "efficientvit_m0": ((64, 128, 192), (1, 2, 3), (4, 4, 4), (5, 5, 5, 5), 79),
    "efficientvit_m1": ((128, 144, 192), (1, 2, 3), (2, 3, 3), (7, 5, 3, 3), 167),
    "efficientvit_m2": ((128, 192, 224), (1, 2, 3), (4, 3, 2), (7, 5, 3, 3), 201),
    "efficientvit_m3": ((128, 240, 320), (1, 2, 3), (4, 3, 4), (5, 5, 5, 5), 263),
    "efficientvit_m4": ((128, 256, 384), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3), 299),
    "efficientvit_m5": ((192, 288, 384), (1, 3, 4), (3, 3, 4), (7, 5, 3, 3), 522),
}

# Unfused, 1000-class head. Cross-checked: identical to timm 1.0.31
# `sum(p.numel() for p in timm.create_model(name).parameters())` for all six (timm-val
# rounds them to 2.35/2.98/4.19/6.90/8.80/12.47M; the paper says 2.3/3.0/4.2/6.9/8.8/12.4M).
PARAMS = {
    "efficientvit_m0": 2_349_436,
    "efficientvit_m1": 2_980_560,
    "efficientvit_m2": 4_187_554,
    "efficientvit_m3": 6_900_722,
    "efficientvit_m4": 8_804_228,
    "efficientvit_m5": 12_473_772,
}

# Seed 004 (YOLOv5 + EfficientViT-M0): its printed backbone row.
SEED_BACKBONE_PARAMS = 2_155_680


# --------------------------------------------------------------------- hand derivation
def conv_bn(cin: int, cout: int, k: int = 1, groups: int = 1) -> int:
    return cin // groups * cout * k * k + 2 * cout  # conv without bias + BN (gamma, beta)


def derive_params(dims, depths, heads, kernels, windows=(7, 7, 4), key_dim=16, num_classes=1000) -> int:
    """Count EfficientViT-M parameters from the published config table alone."""
    d0 = dims[0]
    widths = (3, d0 // 8, d0 // 4, d0 // 2, d0)
    total = sum(conv_bn(a, b, 3) for a, b in zip(widths, widths[1:]))  # patch embed

    def dw(d):
        return conv_bn(d, d, 3, d)

    def ffn(d):
        return conv_bn(d, 2 * d) + conv_bn(2 * d, d)

    def attention(d, nh, win):
        v = d // nh  # value width per head = d / heads
        per_head = sum(conv_bn(d // nh, 2 * key_dim + v) + conv_bn(key_dim, key_dim, kernels[i], key_dim)
                       for i in range(nh))
        return per_head + conv_bn(v * nh, d) + nh * win * win  # + proj + bias table

    def merge(a, b):
        h = 4 * a
        se_width = h // 4  # 0.25 x hidden, already a multiple of 8 for every preset
        se = h * se_width + se_width + se_width * h + h  # two biased 1x1 convs
        return conv_bn(a, h) + conv_bn(h, h, 3, h) + se + conv_bn(h, b)

    for i in range(3):
        if i > 0:
            a, b = dims[i - 1], dims[i]
            total += dw(a) + ffn(a) + merge(a, b) + dw(b) + ffn(b)
        total += depths[i] * (2 * dw(dims[i]) + 2 * ffn(dims[i]) + attention(dims[i], heads[i], windows[i]))
    if num_classes:
        total += 2 * dims[-1] + dims[-1] * num_classes + num_classes  # BN1d + Linear
    return total


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_on_meta(cfg: EfficientViTConfig) -> nn.Module:
    with torch.device("meta"):
        return build(cfg)


# --------------------------------------------------------------------- params / MACs
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_params_exact(name: str) -> None:
    dims, depths, heads, kernels, _ = TABLE[name]
    ours = n_params(build_on_meta(PRESETS[name]))
    assert ours == derive_params(dims, depths, heads, kernels) == PARAMS[name]


@pytest.mark.parametrize("name", list(PRESETS))
def test_macs_match_published(name: str) -> None:
    cost = count_cost(build(PRESETS[name]), 224)
    assert cost.counter == "flop_counter[meta]"  # no data-dependent code in forward
    published = TABLE[name][4] * 1e6
    assert abs(cost.macs - published) / published < 0.05, cost.macs


def test_seed_004_yolov5_backbone_count() -> None:
    """Seed 004 builds Cream's *downstream* EfficientViT-M0 with query kernels (7,5,3,3)
    and no classifier (no BN1d/Linear); its patch embed ends in a stride-1 conv (strides
    8/16/32). Unlike the classification code it does not clip the 7x7 window to the 4x4
    stage-3 map, so stage 3 keeps 49-entry bias tables: window_sizes=(7, 7, 7). With that
    the count is exact; the classification-style (7, 7, 4) gives 396 fewer
    (3 blocks x 4 heads x (49 - 16)), which is what timm builds for the same knobs."""
    cfg = dataclasses.replace(PRESETS["efficientvit_m0"], query_kernels=(7, 5, 3, 3),
                              window_sizes=(7, 7, 7), num_classes=0, patch_size=8)
    model = build(cfg)
    count = n_params(model)
    assert abs(count - SEED_BACKBONE_PARAMS) / SEED_BACKBONE_PARAMS < 1e-3
    assert count == SEED_BACKBONE_PARAMS == derive_params(
        (64, 128, 192), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3), windows=(7, 7, 7), num_classes=0)
    clipped = n_params(build_on_meta(dataclasses.replace(cfg, window_sizes=(7, 7, 4))))
    assert count - clipped == 3 * 4 * (49 - 16)
    assert model.out_strides == (8, 16, 32)
    levels = model.forward_features(torch.randn(1, 3, 128, 128))
    assert [f.shape[-1] for f in levels] == [16, 8, 4]


def test_num_classes_zero_is_identity_head() -> None:
    model = build(dataclasses.replace(PRESETS["efficientvit_m0"], num_classes=0)).eval()
    assert n_params(model.head) == 0
    assert n_params(model) == PARAMS["efficientvit_m0"] - (2 * 192 + 192 * 1000 + 1000)
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        assert torch.allclose(model(x), model.forward_features(x)[-1].mean((2, 3)))


# --------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", ["efficientvit_m0", "efficientvit_m1"])
@pytest.mark.parametrize("size", [224, 256, 640])
def test_forward_shapes(name: str, size: int) -> None:
    model = build(PRESETS[name]).eval()
    assert model.out_strides == (16, 32, 64)
    assert_levels_and_logits(model, 2, size)


def test_odd_and_rectangular_inputs() -> None:
    model = build(PRESETS["efficientvit_m0"]).eval()
    with torch.no_grad():
        for hw in [(300, 180), (32, 96)]:
            levels = model.forward_features(torch.randn(1, 3, *hw))
            assert [tuple(f.shape[-2:]) for f in levels] == [
                tuple(-(-s // st) for s in hw) for st in model.out_strides]


def test_zoo_creates_presets() -> None:
    model = zoo.create("efficientvit_m2", num_classes=10)
    assert model.head.fc.out_features == 10


# --------------------------------------------------------------------- attention bias
def official_style_offsets(window: int) -> torch.Tensor:
    """Number offsets (|dy|, |dx|) in first-seen order over row-major point pairs."""
    points = [(i, j) for i in range(window) for j in range(window)]
    seen: dict[tuple[int, int], int] = {}
    idx = []
    for a in points:
        for b in points:
            off = (abs(a[0] - b[0]), abs(a[1] - b[1]))
            idx.append(seen.setdefault(off, len(seen)))
    return torch.tensor(idx).view(len(points), len(points))


@pytest.mark.parametrize("window", [4, 7])
def test_bias_index_matches_offset_numbering(window: int) -> None:
    ours = relative_offset_index(window).reshape(window**2, window**2)
    assert torch.equal(ours, official_style_offsets(window))
    assert int(ours.max()) + 1 == window * window  # table has one column per offset


# --------------------------------------------------------------------- deploy form
def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """BN statistics (tests.helpers) and the attention biases, which start at zero."""
    randomize_bn(model, seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attention_biases"):
                p.copy_(torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", ["efficientvit_m0", "efficientvit_m1"])
def test_fused_equals_unfused(name: str) -> None:
    model = build(PRESETS[name])
    randomise_norms(model)
    model.eval()
    fused = fuse_for_deploy(copy.deepcopy(model))
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in fused.modules())
    assert n_params(fused) < n_params(model)
    with torch.no_grad():
        for size in (224, 300):  # 300: padded windows in stages 1 and 2
            x = torch.randn(2, 3, size, size)
            ref, out = model(x), fused(x)
            assert (ref - out).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())
            for a, b in zip(model.forward_features(x), fused.forward_features(x)):
                assert (a - b).abs().max() <= 1e-4 * max(1.0, a.abs().max().item())


# --------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"embed_dims": (64, 130, 192)}, "not divisible by heads"),
        ({"heads": (4, 4, 8)}, "fewer entries than max(heads)"),
        ({"query_kernels": (5, 4, 5, 5)}, "odd"),
        ({"depths": (1, 2)}, "needs 3 values"),
        ({"patch_size": 32}, "patch_size"),
    ],
)
def test_validate_rejects_bad_configs(knobs: dict, message: str) -> None:
    cfg = dataclasses.replace(EfficientViTConfig(), **knobs)
    with pytest.raises(ValueError, match=re.escape(message)):
        build(cfg)


def _set_kernel(model: nn.Module, kernel: str) -> nn.Module:
    for m in model.modules():
        if isinstance(m, CascadedGroupAttention):
            m.kernel = kernel
    return model


@pytest.mark.parametrize("training", [False, True])
def test_both_attention_kernels_give_the_same_logits_and_macs(training: bool) -> None:
    """The CPU's baddbmm kernel and SDPA compute the same attention (and count the same MACs)."""
    torch.manual_seed(0)
    model = randomize_bn(zoo.create("efficientvit_m1")).train(training)  # at init the attention branch is zeroed
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, CascadedGroupAttention):
                m.attention_biases.normal_(0.0, 0.5)
    x = torch.randn(2, 3, 224, 224)
    outs, macs = {}, {}
    for kernel in ("sdpa", "matmul"):
        outs[kernel] = _set_kernel(model, kernel)(x)
        macs[kernel] = count_cost(copy.deepcopy(model).eval(), 224).macs
    # float32 summation order differs; batch-2 BatchNorm in training mode amplifies it to ~3e-5
    torch.testing.assert_close(outs["matmul"], outs["sdpa"], atol=1e-4, rtol=1e-3)
    assert macs["matmul"] == macs["sdpa"]


@pytest.mark.parametrize("kernel", ["sdpa", "matmul"])
def test_attend_is_softmax_of_scaled_logits_plus_bias(kernel: str) -> None:
    """Each kernel against the closed form, token by token, with a non-zero bias."""
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 16, 49, generator=gen), torch.randn(3, 16, 49, generator=gen)
    v, bias = torch.randn(3, 32, 49, generator=gen), torch.randn(49, 49, generator=gen)
    expected = torch.empty(3, 32, 49)
    for b in range(3):
        weights = torch.softmax(q[b].T @ k[b] * 0.25 + bias, dim=-1)  # [query token, key token]
        expected[b] = v[b] @ weights.T
    torch.testing.assert_close(attend(q, k, v, bias, 0.25, kernel), expected, atol=1e-5, rtol=1e-5)


def _attention(seed: int = 0) -> CascadedGroupAttention:
    torch.manual_seed(seed)
    attn = CascadedGroupAttention(dim=64, heads=4, key_dim=16, window=7, kernels=(5, 5, 5, 5))
    randomise_norms(attn, seed)
    return attn.eval()


def test_bias_is_gathered_once_without_autograd_and_never_served_stale() -> None:
    attn, x = _attention(), torch.randn(2, 64, 7, 7)
    with torch.no_grad():
        first = attn.cached_bias(7, 7, torch.float32)
        assert attn.cached_bias(7, 7, torch.float32) is first  # reused: no gather per forward
        torch.testing.assert_close(first, attn.bias_for(7, 7), rtol=0, atol=0)
        before = attn(x)
        attn.attention_biases.add_(1.0)  # an in-place write (optimiser step, load_state_dict)
        assert attn.cached_bias(7, 7, torch.float32) is not first
        torch.testing.assert_close(attn.cached_bias(7, 7, torch.float32), attn.bias_for(7, 7), rtol=0, atol=0)
        assert not torch.allclose(attn(x), before)
        attn.load_state_dict(_attention(seed=1).state_dict())
        expected = _attention(seed=1)(x)
        torch.testing.assert_close(attn(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(attn.double()(x.double()), expected.double(), rtol=1e-5, atol=1e-5)


def test_bias_gets_its_gradient_in_every_step_with_autograd() -> None:
    attn = _attention().train()
    x = torch.randn(2, 64, 7, 7)
    for _ in range(2):  # a cached tensor reused by a second backward would raise here
        attn.zero_grad()
        attn(x).square().sum().backward()
        assert attn.attention_biases.grad is not None and attn.attention_biases.grad.abs().sum() > 0
        with torch.no_grad():
            attn.attention_biases.sub_(0.1 * attn.attention_biases.grad)
    assert attn._bias_cache == {}  # nothing was cached while gradients were recorded


# The registry-wide contract test (tests/test_registry_contract.py) checks every preset of
# these families against this hand derivation, so a new family cannot skip one.
TESTED_FAMILIES = ("efficientvit",)


def hand_params(preset: str) -> int:
    """The preset's parameter count (training form, 1000 classes) derived by hand above."""
    dims, depths, heads, kernels, _ = TABLE[preset]
    return derive_params(dims, depths, heads, kernels)
