"""RT-DETR (rtdetr-l head) over any backbone: exact size, MACs, shapes, deploy form, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench.detector.rtdetr import (
    AIFI,
    RTDETR,
    RepC3,
    build_rtdetr,
    rtdetr_l,
    sincos_position_embedding_2d,
)
from nasbench.errors import UserError
from nasbench.families.base import Backbone, fuse_for_deploy
from nasbench.metrics.cost import count_cost
from tests.helpers import randomize_bn

torch.set_num_threads(1)

# Ultralytics' rtdetr-l model summary for nc=80 (the number quoted in REFERENCE.md §7 as
# 32.97M, printed in full as 32,970,476 in third-party copies of the summary line).
RTDETR_L_PARAMS = 32_970_476
HIDDEN = 256


class FakeBackbone(Backbone):
    """Three 1x1-projected average pools at the given strides: a cheap stand-in backbone."""

    def __init__(self, channels=(32, 48, 64), strides=(8, 16, 32), same_size: bool = False) -> None:
        super().__init__()
        self.out_channels = tuple(channels)
        self.out_strides = tuple(strides)
        self.same_size = same_size  # lie about the strides: every level at the first stride
        self.proj = nn.ModuleList(nn.Conv2d(3, c, 1) for c in channels)
        self.head = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        strides = [self.out_strides[0]] * len(self.out_strides) if self.same_size else self.out_strides
        return [p(F.avg_pool2d(x, s, ceil_mode=True)) for p, s in zip(self.proj, strides)]


# ---------------------------------------------------------------------------------------
# Hand derivation of the parameter count from rtdetr-l.yaml and the RTDETRDecoder defaults


def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return k * k * (cin // groups) * cout + 2 * cout


def linear(i: int, o: int) -> int:
    return i * o + o


def layer_norm(d: int) -> int:
    return 2 * d


def repc3(c: int = HIDDEN, n: int = 3) -> int:
    # cv1, cv2: 1x1 on the 2c concat; n RepConvs (3x3 conv-BN + 1x1 conv-BN); no cv3 at e=1.
    return 2 * conv_bn(2 * c, c, 1) + n * (conv_bn(c, c, 3) + conv_bn(c, c, 1))


def aifi(c: int = HIDDEN, ffn: int = 1024) -> int:
    return 4 * linear(c, c) + linear(c, ffn) + linear(ffn, c) + 2 * layer_norm(c)


def neck_params(in_channels: tuple[int, int, int], c: int = HIDDEN) -> int:
    return (
        sum(conv_bn(ch, c, 1) for ch in in_channels)  # input_proj.0-2 (no activation)
        + aifi(c)
        + 2 * conv_bn(c, c, 1)  # lateral_convs.0-1
        + 4 * repc3(c)  # fpn_blocks.0-1, pan_blocks.0-1
        + 2 * conv_bn(c, c, 3)  # downsample_convs.0-1 (3x3 s2)
    )


def mlp(dims: list[int]) -> int:
    return sum(linear(a, b) for a, b in zip(dims, dims[1:]))


def decoder_params(nc: int, d: int = HIDDEN, layers: int = 6, heads: int = 8, levels: int = 3,
                   points: int = 4, ffn: int = 1024) -> int:
    layer = (
        4 * linear(d, d) + layer_norm(d)  # self-attention
        + linear(d, heads * levels * points * 2)  # sampling offsets
        + linear(d, heads * levels * points)  # attention weights
        + 2 * linear(d, d) + layer_norm(d)  # value / output projections
        + linear(d, ffn) + linear(ffn, d) + layer_norm(d)  # FFN
    )
    return (
        levels * conv_bn(d, d, 1)  # input_proj: conv (no bias) + BN
        + layers * layer
        + nc * d  # denoising_class_embed
        + mlp([4, 2 * d, d])  # query_pos_head
        + linear(d, d) + layer_norm(d)  # enc_output
        + linear(d, nc) + mlp([d, d, d, 4])  # enc_score_head, enc_bbox_head
        + layers * (linear(d, nc) + mlp([d, d, d, 4]))  # dec_score_head, dec_bbox_head
    )


HGNETV2_L_TRUNK = 13_553_376  # derived in tests/families/test_hgnetv2.py


def test_hand_derivation_matches_ultralytics_rows() -> None:
    # Rows of the Ultralytics model summary printed in the seed (000_*.txt): AIFI 789,760,
    # Conv[256,256,1,1] 66,048, RepC3[512,256,3] 2,232,320, Conv[256,256,3,2] 590,336, and
    # RTDETRDecoder with nc=1 7,303,907.
    assert aifi() == 789_760
    assert conv_bn(256, 256, 1) == 66_048
    assert repc3() == 2_232_320
    assert conv_bn(256, 256, 3) == 590_336
    assert decoder_params(nc=1) == 7_303_907
    assert neck_params((512, 1024, 2048)) == 11_950_848
    assert decoder_params(nc=80) == 7_466_252
    assert HGNETV2_L_TRUNK + neck_params((512, 1024, 2048)) + decoder_params(80) == RTDETR_L_PARAMS


def test_rtdetr_l_params_exact() -> None:
    model = rtdetr_l()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == RTDETR_L_PARAMS
    assert count(model.backbone) == HGNETV2_L_TRUNK
    assert count(model.head.encoder) == neck_params((512, 1024, 2048))
    assert count(model.head.decoder) == decoder_params(80)
    assert count(model.head.encoder.aifi) == aifi()
    assert count(model.head.encoder.fpn_blocks[0]) == repc3()
    assert count(rtdetr_l(num_classes=1).head.decoder) == 7_303_907


def test_head_params_follow_any_backbone() -> None:
    model = build_rtdetr(FakeBackbone(channels=(40, 80, 160)), num_classes=20)
    assert sum(p.numel() for p in model.head.parameters()) == neck_params((40, 80, 160)) + decoder_params(20)


def test_macs_at_640_on_meta() -> None:
    cost = count_cost(rtdetr_l(), 640)
    assert cost.counter == "flop_counter[meta]"  # the decoder (top-k, gather, grid_sample) runs on meta
    assert cost.params == RTDETR_L_PARAMS
    assert cost.macs == 54_795_673_600
    # Published: 110 GFLOPs (lyuwenyu, 2xMACs); Ultralytics thop x2: 108.3 (it misses the
    # attention matmuls, grid_sample and all nn.MultiheadAttention projections but adds BN/LN).
    assert abs(2 * cost.macs / 1e9 - 110) / 110 < 0.05
    assert abs(2 * cost.macs / 1e9 - 108.3) / 108.3 < 0.05
    # Attention matmuls: AIFI on the 20x20 P5 tokens (QK^T + AV), 6 decoder self-attentions
    # on 300 queries, the deformable weighting (8 heads x 32 ch x 300 q x 12 samples per
    # layer), and the AIFI q/k/v projections of the 400 tokens (torch routes those
    # linears on a transposed view through bmm).
    tokens_p5, queries, d = 20 * 20, 300, HIDDEN
    attention = 2 * tokens_p5**2 * d + 6 * 2 * queries**2 * d
    weighting = 6 * 8 * 32 * queries * 12
    aifi_qkv = 3 * tokens_p5 * d * d
    assert cost.by_op["aten.bmm"] == attention + weighting + aifi_qkv
    # Bilinear sampling: 4 MACs per sampled value (6 layers, 8 heads, 32 ch, 300 q, 3 levels x 4 points).
    assert cost.by_op["aten.grid_sampler_2d"] == 4 * 6 * 8 * 32 * queries * 12


@pytest.mark.parametrize(
    "make_backbone",
    [
        pytest.param(lambda: FakeBackbone(strides=(8, 16, 32)), id="fake-8-16-32"),
        pytest.param(lambda: FakeBackbone(channels=(24, 24, 96), strides=(16, 32, 64)), id="fake-16-32-64"),
        pytest.param(None, id="hgnetv2_l"),
    ],
)
def test_output_shapes(make_backbone) -> None:
    torch.manual_seed(0)
    model = rtdetr_l(num_classes=7) if make_backbone is None else build_rtdetr(make_backbone(), num_classes=7)
    model.eval()
    with torch.no_grad():
        boxes, logits = model(torch.randn(2, 3, 320, 320))
    assert boxes.shape == (2, 300, 4) and logits.shape == (2, 300, 7)
    assert torch.isfinite(logits).all()
    assert ((boxes >= 0) & (boxes <= 1)).all()


def test_training_outputs_per_layer() -> None:
    model = build_rtdetr(FakeBackbone(), num_classes=5).train()
    out = model.forward_all(torch.randn(1, 3, 256, 256))
    assert out.boxes.shape == (6, 1, 300, 4) and out.logits.shape == (6, 1, 300, 5)
    assert out.enc_boxes.shape == (1, 300, 4) and out.enc_logits.shape == (1, 300, 5)
    (out.boxes.sum() + out.logits.sum() + out.enc_logits.sum()).backward()  # differentiable end to end


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics everywhere (tests.helpers) and non-zero box heads (they start at zero)."""
    randomize_bn(model, seed)
    gen = torch.Generator().manual_seed(seed)
    decoder = model.head.decoder
    for head in [decoder.enc_bbox_head, *decoder.dec_bbox_head]:
        head.layers[-1].weight.data.copy_(torch.randn(head.layers[-1].weight.shape, generator=gen) * 0.01)


def assert_same_detections(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """Same set of query rows (order-free: near-equal encoder scores may swap places)."""
    # Exact pairwise distances: cdist's default matmul shortcut loses ~1e-2 to cancellation.
    distance = torch.cdist(a[0], b[0], compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert distance.max() <= tol * a.abs().max(), distance.max()


def test_fused_equals_unfused() -> None:
    torch.manual_seed(0)
    model = rtdetr_l().eval()
    randomize(model)
    x = torch.randn(1, 3, 320, 320)
    neck = lambda: model.head.encoder(model.backbone.forward_features(x))  # noqa: E731
    with torch.no_grad():
        ref, ref_levels = model(x), neck()
        fuse_for_deploy(model)
        fused, levels = model(x), neck()
    for a, b in zip(ref_levels, levels):  # continuous part: elementwise
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.fused is not None for m in model.modules() if type(m).__name__ == "RepConv")
    assert sum(p.numel() for p in model.parameters()) < RTDETR_L_PARAMS
    rows = lambda d: torch.cat([d.boxes, d.logits], -1)  # noqa: E731
    assert_same_detections(rows(ref), rows(fused), tol=1e-4)


def test_repc3_fuse_is_exact() -> None:
    torch.manual_seed(0)
    block = RepC3(64, 32).eval()
    for m in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
        m.running_mean.normal_(0, 0.2)
        m.running_var.uniform_(0.5, 1.0)
    x = torch.randn(2, 64, 12, 12)
    with torch.no_grad():
        ref = block(x)
        fuse_for_deploy(block)
        assert (block(x) - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_position_embedding_follows_reference_grid_order() -> None:
    # Token t gets coordinates (t // h, t % h), as RT-DETR's meshgrid(w, h, "ij") enumerates them.
    h, w, dim = 3, 5, 8
    emb = sincos_position_embedding_2d(h, w, dim, torch.device("cpu"), torch.float32)
    assert emb.shape == (1, h * w, dim)
    t = 7
    omega = 1.0 / 10000.0 ** (torch.arange(2) / 2)
    first, second = t // h, t % h
    expected = torch.cat([torch.sin(first * omega), torch.cos(first * omega),
                          torch.sin(second * omega), torch.cos(second * omega)])
    torch.testing.assert_close(emb[0, t], expected)
    assert AIFI(16, 32, 2)(torch.randn(1, 16, 3, 5)).shape == (1, 16, 3, 5)  # non-square maps work


def test_rejects_backbone_with_fewer_than_three_levels() -> None:
    with pytest.raises(UserError, match="needs 3"):
        build_rtdetr(FakeBackbone(channels=(32, 64), strides=(16, 32)))


def test_rejects_levels_that_do_not_shrink() -> None:
    with pytest.raises(UserError, match="strides"):
        build_rtdetr(FakeBackbone(strides=(8, 8, 16)))
    lying = build_rtdetr(FakeBackbone(strides=(8, 16, 32), same_size=True)).eval()
    with pytest.raises(UserError, match="halve in size"):
        lying(torch.randn(1, 3, 256, 256))


def test_tiny_input_uses_every_position() -> None:
    # 64x64 at strides 8/16/32 gives 64 + 16 + 4 = 84 positions < 300 queries.
    model = build_rtdetr(FakeBackbone(), num_classes=3).eval()
    with torch.no_grad():
        boxes, logits = model(torch.randn(1, 3, 64, 64))
    assert boxes.shape == (1, 84, 4) and logits.shape == (1, 84, 3)


def test_is_a_module_pair() -> None:
    model = build_rtdetr(FakeBackbone())
    assert isinstance(model, RTDETR) and isinstance(model.backbone, Backbone)


def test_thop_reproduces_ultralytics_108_3() -> None:
    """Why Ultralytics logs 108.3 "GFLOPs" for rtdetr-l while we count 109.6 (2 x MACs).

    thop (0.1.1, the counter behind the 108.3 log) hooks modules only: it adds BN/LN
    (4 per element, not MACs) and misses the attention matmuls, the deformable weighting
    and grid_sample. Our q/k/v/out projections are nn.Linear, which thop sees; Ultralytics
    uses nn.MultiheadAttention, whose projections thop 0.1.1 does not see at all.
    """
    from nasbench.metrics.cost import macs_thop

    thop_macs = macs_thop(rtdetr_l(), 640)
    if thop_macs is None:
        pytest.skip("thop not installed")
    assert thop_macs == 54_746_521_600
    projections = 4 * 400 * 256 * 256 + 6 * 4 * 300 * 256 * 256  # AIFI + 6 decoder self-attentions
    assert round(2 * (thop_macs - projections) / 1e9, 1) == 108.3
