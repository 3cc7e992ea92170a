"""Detector-level measurement: the seed's MobileViT-S swap reproduced, Δ columns, bad backbones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench import zoo
from nasbench.detector.measure import (
    BASELINE,
    DetectorOptions,
    add_deltas,
    baseline_spec,
    build_detector,
    delta_pct,
    describe_plan,
    detector_plan,
    is_baseline,
    measure_detectors,
    resolve,
)
from nasbench.detector.rtdetr import build_rtdetr
from nasbench.errors import UserError
from nasbench.families.base import Backbone
from nasbench.metrics.cost import count_params
from nasbench.metrics.latency import TimingPlan

torch.set_num_threads(1)

TINY_PLAN = TimingPlan(warmup=0, runs=1, rounds=1, time_limit_s=5.0, min_runs=1)
FAST = DetectorOptions(imgsz=128, device="cpu", thop=False, plan=TINY_PLAN)


# ---------------------------------------------------------------------------------------
# The seed article (shared/seeds/000_*.txt): RT-DETR with a MobileViT-S backbone, nc=1,
# "24,137,067 parameters, 84.7 GFLOPs", model summary rows:
#   0 mobile_vit_small 5,578,632 (with its unused 1000-class classifier)
#   1 Conv[640,256,1,1] 164,352 (input_proj.2: P5 = the 640-channel final 1x1 expansion)
#   5 Conv[128,256,1,1] 33,280 (P4)   10 Conv[96,256,1,1] 25,088 (P3)
#   2 AIFI 789,760; 3, 8 Conv[256,256,1,1] 66,048; 7, 12, 15, 18 RepC3 2,232,320;
#   13, 16 Conv[256,256,3,2] 590,336; 19 RTDETRDecoder[nc=1] 7,303,907
SEED_TOTAL_PARAMS = 24_137_067
SEED_ROWS = {
    "backbone": 5_578_632,
    "neck": 164_352 + 789_760 + 66_048 + 33_280 + 2_232_320 + 66_048 + 25_088 + 2_232_320
    + 590_336 + 2_232_320 + 590_336 + 2_232_320,
    "decoder": 7_303_907,
}
SEED_GFLOPS = 84.7


def seed_detector() -> nn.Module:
    """Our build of the seed's config: MobileViT-S with its classifier, rtdetr-l head, 1 class."""
    return build_rtdetr(zoo.create("mobilevit_s"), num_classes=1)


def test_seed_mobilevit_s_swap_params_match_exactly() -> None:
    det = seed_detector()
    assert count_params(det)[0] == 24_137_067 == SEED_TOTAL_PARAMS  # difference: 0
    # Row by row as in the seed's summary: same taps (P3 = layer3's 96 ch, P4 = layer4's 128 ch,
    # P5 = the 640-ch expansion conv), no extra layers. The seed's backbone also returns a
    # 4th, stride-4 map (64 ch) that no head layer reads: no parameters, so no difference.
    assert count_params(det.backbone)[0] == SEED_ROWS["backbone"]
    assert count_params(det.head.encoder)[0] == SEED_ROWS["neck"] == 11_254_528
    assert count_params(det.head.decoder)[0] == SEED_ROWS["decoder"]
    assert sum(SEED_ROWS.values()) == SEED_TOTAL_PARAMS
    assert det.backbone.out_channels == (96, 128, 640)


def _thop_ops(tree: dict, keep) -> float:
    """Sum thop's per-module ops over the modules whose dotted name ``keep`` accepts."""
    total = 0.0

    def walk(node: dict, prefix: str) -> None:
        nonlocal total
        for name, (ops, _, children) in node.items():
            path = f"{prefix}{name}"
            if keep(path):
                total += ops
            else:
                walk(children, path + ".")

    walk(tree, "")
    return total


def test_seed_gflops_thop_convention() -> None:
    """thop x 2 at 640 on the training form (Ultralytics prints its summary at construction).

    Ours: 42,640,076,800 thop MACs = 85.28 GFLOPs. The seed's 84.7 is reproduced to the
    printed digit by three differences in what thop 0.1.1 can see (it counts module hooks
    by exact type only):
    - our attention is 4 nn.Linear (q, k, v, out) that thop counts; Ultralytics' AIFI and
      decoder self-attention use nn.MultiheadAttention, which thop counts as 0:
      AIFI 4*256*(20*20*256) + decoder 6 layers * 4*256*(300*256) = 576,716,800 MACs;
    - the seed's MobileViT applies an nn.Softmax module (thop: 3N-1 ops per row of N)
      to every attention map; ours runs scaled_dot_product_attention (not seen):
      2 layers at 40x40 patches, 4 at 20x20, 3 at 10x10, 4 heads x 4 pixels per patch;
    - Ultralytics upsamples with nn.Upsample(nearest) (thop: 1 op per output element),
      we use F.interpolate (not seen): 256*40*40 + 256*80*80.
    """
    from thop import profile

    det = seed_detector().eval()
    ops, _, tree = profile(copy.deepcopy(det), inputs=(torch.randn(1, 3, 640, 640),), verbose=False,
                           ret_layer_info=True)
    assert int(ops) == 42_640_076_800
    assert round(2 * ops / 1e9, 2) == 85.28

    our_mha = _thop_ops(tree, lambda p: p.endswith((".attn", ".self_attn")) and p.startswith("head."))
    aifi, decoder_self_attn = 4 * 256 * (20 * 20 * 256), 6 * 4 * 256 * (300 * 256)
    assert our_mha == aifi + decoder_self_attn == 576_716_800

    heads, pixels_per_patch = 4, 4
    softmax_ops = sum(
        layers * heads * pixels_per_patch * n * (3 * n - 1)
        for layers, n in ((2, 40 * 40), (4, 20 * 20), (3, 10 * 10))  # patches at strides 8, 16, 32
    )
    assert softmax_ops == 277_838_400
    upsample_ops = 256 * 40 * 40 + 256 * 80 * 80
    assert upsample_ops == 2_048_000

    ultralytics_equivalent = ops - our_mha + softmax_ops + upsample_ops
    assert int(ultralytics_equivalent) == 42_343_246_400
    assert round(2 * ultralytics_equivalent / 1e9, 1) == SEED_GFLOPS  # 84.686 -> "84.7"


# ---------------------------------------------------------------------------------------
# Δ columns, plans, names


def test_delta_columns() -> None:
    rows = {
        "a": {"det_params": 10_000_000, "det_macs": 25, "det_latency_ms": 3.0},
        "rtdetr_l": {"det_params": 40_000_000, "det_macs": 50, "det_latency_ms": 2.0},
    }
    add_deltas(rows, "rtdetr_l")
    assert rows["rtdetr_l"]["det_params_delta_pct"] == 0.0
    assert rows["rtdetr_l"]["det_macs_delta_pct"] == 0.0
    assert rows["rtdetr_l"]["det_latency_delta_pct"] == 0.0
    assert rows["a"]["det_params_delta_pct"] == pytest.approx(-75.0)
    assert rows["a"]["det_macs_delta_pct"] == pytest.approx(-50.0)
    assert rows["a"]["det_latency_delta_pct"] == pytest.approx(50.0)
    assert delta_pct(1, 1) == 0.0


def test_cpu_timing_is_capped_and_says_so() -> None:
    plan, capped = detector_plan(TimingPlan(warmup=10, runs=50, rounds=5, time_limit_s=120), torch.device("cpu"))
    assert capped and (plan.warmup, plan.runs, plan.rounds, plan.time_limit_s) == (1, 5, 5, 60.0)
    assert "CPU cap" in describe_plan(plan, capped)
    small, capped = detector_plan(TINY_PLAN, torch.device("cpu"))
    assert small == TINY_PLAN and not capped  # never raised above what was asked
    gpu_plan, capped = detector_plan(TimingPlan(), torch.device("cuda"))
    assert gpu_plan == TimingPlan() and not capped


def test_rtdetr_l_name_resolves_to_the_reference() -> None:
    spec = resolve(BASELINE)
    assert is_baseline(spec) and spec.family == "rtdetr" and spec.native_imgsz == 640
    assert not is_baseline(resolve("mobilevit_xxs"))
    with torch.device("meta"):
        model = spec.build()
    # the whole detector, not its HGNetv2-L backbone (that one is `hgnetv2_l`)
    assert sum(p.numel() for p in model.parameters()) == 32_970_476


def test_measure_detectors_times_the_reference_in_the_same_run() -> None:
    res = measure_detectors({"efficientvit_m0": zoo.resolve("efficientvit_m0")}, FAST)
    assert list(res.rows) == ["efficientvit_m0", "rtdetr_l"] and res.baseline_label == "rtdetr_l"
    ev, ref = res.rows["efficientvit_m0"], res.rows["rtdetr_l"]
    assert ev["det_strides"] == "16/32/64" and ref["det_strides"] == "8/16/32"
    assert ref["det_params_train_form"] == 32_970_476  # Ultralytics' rtdetr-l
    assert ref["det_params"] == 32_147_372  # BN folded, RepConvs merged
    for col in ("det_params_delta_pct", "det_macs_delta_pct", "det_latency_delta_pct"):
        assert ref[col] == 0.0
    assert ev["det_params_delta_pct"] == pytest.approx(100 * (ev["det_params"] / ref["det_params"] - 1))
    assert ev["det_macs_delta_pct"] == pytest.approx(100 * (ev["det_macs"] / ref["det_macs"] - 1))
    assert ev["det_latency_delta_pct"] == pytest.approx(100 * (ev["det_latency_ms"] / ref["det_latency_ms"] - 1))
    assert ev["det_flops"] == 2 * ev["det_macs"] and ev["det_latency_runs"] == ref["det_latency_runs"] == 1
    assert "alternating" in res.what and "2 model(s)" in res.what


# ---------------------------------------------------------------------------------------
# What the detector contains, and backbones it refuses


class Fake(Backbone):
    """Pooled 1x1 projections at given strides, with a classifier only ``forward`` uses."""

    def __init__(self, channels=(16, 24, 32), strides=(8, 16, 32), pools=None, declared=None) -> None:
        super().__init__()
        self.out_channels = tuple(declared or channels)
        self.out_strides = tuple(strides)
        self.pools = tuple(pools or strides)
        self.proj = nn.ModuleList(nn.Conv2d(3, c, 1) for c in channels)
        self.head = nn.Linear(channels[-1], 1000)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [p(F.avg_pool2d(x, s, ceil_mode=True)) for p, s in zip(self.proj, self.pools)]

    def forward_head(self, last: torch.Tensor) -> torch.Tensor:
        return self.head(last.mean((2, 3)))


def factory_spec(make) -> zoo.ModelSpec:
    return zoo.ModelSpec("fake", "custom", None, "factory", None, factory=make)


def test_classification_only_modules_are_left_out() -> None:
    det = build_detector(factory_spec(Fake), "fake", FAST)
    assert det.removed_params == 32 * 1000 + 1000  # the classifier no detector runs
    assert isinstance(det.model.backbone.head, nn.Identity)
    with torch.inference_mode():
        out = det.model(torch.randn(1, 3, 128, 128))
    assert out.boxes.shape == (1, 300, 4)  # 16*16 + 8*8 + 4*4 = 336 positions >= 300 queries


class NoFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(
    "make, message",
    [
        (NoFeatures, "cannot be an RT-DETR backbone: NoFeatures has no forward_features()"),
        (lambda: Fake(channels=(16, 32), strides=(16, 32)), "declares 2 feature levels"),
        (lambda: Fake(pools=(8, 8, 8)), "do not decrease from level to level"),
        (lambda: Fake(pools=(8, 32, 64)), "must halve in size"),
        (lambda: Fake(declared=(16, 24, 48)), "out_channels declares (16, 24, 48)"),
    ],
)
def test_bad_backbones_are_one_line_user_errors(make, message: str) -> None:
    with pytest.raises(UserError) as info:
        build_detector(factory_spec(make), "fake", FAST)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("model 'fake'")


def test_baseline_spec_is_the_detector_not_a_config() -> None:
    # rtdetr_l is no zoo family config: exporting or re-reading it as a backbone config is impossible
    spec = baseline_spec()
    assert spec.config is None and spec.source == "baseline" and spec.native_imgsz == 640
