"""MobileViT v1 and v2 (Apple, ml-cvnets), as parametric families.

v1: "MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer"
(Mehta & Rastegari, ICLR 2022). v2: "Separable Self-attention for Mobile Vision
Transformers" (TMLR 2023). Presets reproduce ml-cvnets' ImageNet configurations
(``cvnets/models/classification/config/mobilevit*.py``) and therefore its parameter
counts exactly (1000-class head): XXS 1,272,024; XS 2,317,848; S 5,578,632; v2 0.5x
1,370,593 … 2.0x 18,449,329.

Layout shared by both versions (strides in brackets):
stem 3x3 s2 [2] -> L1 MV2 [2] -> L2 MV2 x n [4] -> L3 MV2 s2 + MobileViT block [8]
-> L4 [16] -> L5 [32] -> (v1: 1x1 expansion conv) -> pool -> linear.
Feature levels for detectors: L3, L4 and the last level (v1: after the 1x1 expansion,
as timm's ``final_conv`` feature and as the RT-DETR swap in seed 000 does; v2: L5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.families.base import Backbone, Family, Published
from nasbench.families.layers import ClassifierHead, ConvNormAct, make_divisible


# --------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class MobileViTConfig:
    """MobileViT v1. Per-stage tuples are indexed (L1, L2, L3, L4, L5) or (L3, L4, L5)."""

    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (32, 64, 96, 128, 160)  # L1..L5 outputs
    mv2_blocks: tuple[int, int] = (1, 3)  # MV2 blocks in L1, L2
    mv2_expansion: int = 4
    transformer_dims: tuple[int, int, int] = (144, 192, 240)  # d per L3..L5
    ffn_dims: tuple[int, int, int] = (288, 384, 480)
    transformer_blocks: tuple[int, int, int] = (2, 4, 3)
    heads: int = 4
    patch_size: tuple[int, int] = (2, 2)  # (h, w)
    exp_factor: int = 4  # final 1x1 conv width = min(exp_factor * L5, exp_max)
    exp_max: int = 960
    num_classes: int = 1000
    drop_rate: float = 0.1

    def validate(self) -> None:
        _check_lengths(self, {"stage_channels": 5, "mv2_blocks": 2, "transformer_dims": 3,
                              "ffn_dims": 3, "transformer_blocks": 3, "patch_size": 2})
        for d in self.transformer_dims:
            if d % self.heads:
                raise ValueError(f"transformer dim {d} is not divisible by heads={self.heads}")
        _check_positive(self, ["stem_channels", "mv2_expansion", "heads", "exp_factor", "exp_max"])
        _check_positive_seq(self, ["stage_channels", "mv2_blocks", "transformer_dims", "ffn_dims",
                                   "transformer_blocks", "patch_size"])

    @property
    def exp_channels(self) -> int:
        return min(self.exp_factor * self.stage_channels[-1], self.exp_max)


@dataclass(frozen=True)
class MobileViTV2Config:
    """MobileViT v2: every width follows from ``width_multiplier`` unless overridden."""

    width_multiplier: float = 1.0
    attn_dim_ratio: float = 0.5  # attention unit dim = ratio x stage width (cvnets: 0.5)
    ffn_multiplier: float = 2.0
    attn_blocks: tuple[int, int, int] = (2, 4, 3)  # L3, L4, L5
    mv2_blocks: tuple[int, int] = (1, 2)  # L1, L2
    mv2_expansion: int = 2
    patch_size: tuple[int, int] = (2, 2)
    num_classes: int = 1000
    drop_rate: float = 0.0

    def validate(self) -> None:
        _check_lengths(self, {"attn_blocks": 3, "mv2_blocks": 2, "patch_size": 2})
        if not 0.1 <= self.width_multiplier <= 4.0:
            raise ValueError(f"width_multiplier {self.width_multiplier} outside [0.1, 4.0]")
        if not 0.0 < self.attn_dim_ratio <= 2.0:
            raise ValueError(f"attn_dim_ratio {self.attn_dim_ratio} outside (0, 2]")
        _check_positive(self, ["ffn_multiplier", "mv2_expansion"])
        _check_positive_seq(self, ["attn_blocks", "mv2_blocks", "patch_size"])

    # Channel arithmetic of cvnets' config/mobilevit_v2.py.
    @property
    def stem_channels(self) -> int:
        return make_divisible(min(64, max(16, 32 * self.width_multiplier)), 8)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        w = self.width_multiplier
        return (make_divisible(64 * w, 16),) + tuple(make_divisible(c * w, 8) for c in (128, 256, 384, 512))

    @property
    def attn_dims(self) -> tuple[int, int, int]:
        w, r = self.width_multiplier, self.attn_dim_ratio
        return tuple(make_divisible(c * w * r, 8) for c in (256, 384, 512))  # type: ignore[return-value]

    def ffn_dim(self, attn_dim: int) -> int:
        return int(self.ffn_multiplier * attn_dim // 16 * 16)


def _check_lengths(cfg: object, expected: dict[str, int]) -> None:
    for name, n in expected.items():
        if len(getattr(cfg, name)) != n:
            raise ValueError(f"{name} needs {n} values, got {len(getattr(cfg, name))}")


def _check_positive(cfg: object, names: list[str]) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")


def _check_positive_seq(cfg: object, names: list[str]) -> None:
    for name in names:
        if any(v <= 0 for v in getattr(cfg, name)):
            raise ValueError(f"every value of {name} must be positive, got {getattr(cfg, name)}")


# --------------------------------------------------------------------------- blocks
class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 project (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: float) -> None:
        super().__init__()
        hidden = make_divisible(int(round(in_ch * expansion)), 8)
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvNormAct(in_ch, hidden, 1))
        layers += [ConvNormAct(hidden, hidden, 3, stride, groups=hidden), ConvNormAct(hidden, out_ch, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_skip else y


class TransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer (MHSA + FFN with SiLU), v1's global block."""

    def __init__(self, dim: int, ffn_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Linear(ffn_dim, dim))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _padded_to_patch(x: torch.Tensor, patch_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize so H, W are multiples of the patch (as cvnets does)."""
    ph, pw = patch_hw
    h, w = x.shape[-2:]
    new_h, new_w = math.ceil(h / ph) * ph, math.ceil(w / pw) * pw
    if (new_h, new_w) == (h, w):
        return x
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


def unfold_patches(x: torch.Tensor, patch_hw: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] -> [B, P, N, C]: P pixels per patch, N patches (H, W multiples of patch)."""
    b, c, h, w = x.shape
    ph, pw = patch_hw
    x = x.reshape(b, c, h // ph, ph, w // pw, pw)
    return x.permute(0, 3, 5, 2, 4, 1).reshape(b, ph * pw, (h // ph) * (w // pw), c)


def fold_patches(x: torch.Tensor, patch_hw: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``unfold_patches``."""
    b, _, _, c = x.shape
    (ph, pw), (h, w) = patch_hw, hw
    x = x.reshape(b, ph, pw, h // ph, w // pw, c)
    return x.permute(0, 5, 3, 1, 4, 2).reshape(b, c, h, w)


class MobileViTBlock(nn.Module):
    """v1: local 3x3 conv -> 1x1 to d -> patch-wise transformer -> 1x1 back -> 3x3 fusion."""

    def __init__(self, ch: int, dim: int, ffn_dim: int, blocks: int, heads: int, patch_hw: tuple[int, int]) -> None:
        super().__init__()
        self.patch_hw = patch_hw
        self.local = nn.Sequential(ConvNormAct(ch, ch, 3), nn.Conv2d(ch, dim, 1, bias=False))
        self.transformer = nn.Sequential(*[TransformerLayer(dim, ffn_dim, heads) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)
        self.proj = ConvNormAct(dim, ch, 1)
        self.fusion = ConvNormAct(2 * ch, ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        size = y.shape[-2:]
        y = _padded_to_patch(y, self.patch_hw)
        b, d, h, w = y.shape
        tokens = unfold_patches(y, self.patch_hw).reshape(-1, (h // self.patch_hw[0]) * (w // self.patch_hw[1]), d)
        tokens = self.norm(self.transformer(tokens))
        y = fold_patches(tokens.reshape(b, -1, tokens.shape[1], d), self.patch_hw, (h, w))
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.fusion(torch.cat((x, self.proj(y)), dim=1))


class LinearAttention(nn.Module):
    """v2's separable self-attention: O(N) context vector from one query channel."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, d, P, N]
        q, k, v = self.qkv(x).split((1, self.dim, self.dim), dim=1)
        scores = q.softmax(dim=-1)  # [B, 1, P, N]
        # context[b, :, p] = sum_n k[b, :, p, n] * scores[b, 0, p, n]: a real MAC reduction,
        # written as a matmul so the counter sees it.
        context = torch.matmul(k.permute(0, 2, 1, 3), scores.permute(0, 2, 3, 1)).permute(0, 2, 1, 3)
        return self.proj(F.relu(v) * context)


class LinearAttnLayer(nn.Module):
    """Pre-norm (GroupNorm(1) = LayerNorm over C,P,N) linear attention + 1x1-conv FFN."""

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = LinearAttention(dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.ffn = nn.Sequential(nn.Conv2d(dim, ffn_dim, 1), nn.SiLU(), nn.Conv2d(ffn_dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class MobileViTV2Block(nn.Module):
    """v2: DW 3x3 -> 1x1 to d -> linear attention over patches -> 1x1 back (no fusion)."""

    def __init__(self, ch: int, dim: int, ffn_dim: int, blocks: int, patch_hw: tuple[int, int]) -> None:
        super().__init__()
        self.patch_hw = patch_hw
        self.local = nn.Sequential(ConvNormAct(ch, ch, 3, groups=ch), nn.Conv2d(ch, dim, 1, bias=False))
        self.global_rep = nn.Sequential(*[LinearAttnLayer(dim, ffn_dim) for _ in range(blocks)])
        self.norm = nn.GroupNorm(1, dim)
        self.proj = ConvNormAct(dim, ch, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        # cvnets resizes the block input; resizing back keeps the stage stride exact,
        # which detectors rely on (a no-op whenever H, W are patch multiples).
        y = self.local(_padded_to_patch(x, self.patch_hw))
        h, w = y.shape[-2:]
        patches = unfold_patches(y, self.patch_hw).permute(0, 3, 1, 2)  # [B, d, P, N]
        patches = self.norm(self.global_rep(patches))
        y = self.proj(fold_patches(patches.permute(0, 2, 3, 1), self.patch_hw, (h, w)))
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


# --------------------------------------------------------------------------- models
def _mv2_stage(in_ch: int, out_ch: int, blocks: int, stride: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*[
        InvertedResidual(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, expansion)
        for i in range(blocks)
    ])


class MobileViT(Backbone):
    """MobileViT v1 backbone + classifier."""

    def __init__(self, cfg: MobileViTConfig) -> None:
        super().__init__()
        cfg.validate()
        c = cfg.stage_channels
        e = cfg.mv2_expansion
        self.stem = ConvNormAct(3, cfg.stem_channels, 3, stride=2)
        self.layer1 = _mv2_stage(cfg.stem_channels, c[0], cfg.mv2_blocks[0], 1, e)
        self.layer2 = _mv2_stage(c[0], c[1], cfg.mv2_blocks[1], 2, e)
        self.layer3, self.layer4, self.layer5 = (
            nn.Sequential(
                InvertedResidual(c[i + 1], c[i + 2], 2, e),
                MobileViTBlock(c[i + 2], cfg.transformer_dims[i], cfg.ffn_dims[i], cfg.transformer_blocks[i],
                               cfg.heads, cfg.patch_size),
            )
            for i in range(3)
        )
        self.final_conv = ConvNormAct(c[4], cfg.exp_channels, 1)
        self.head = ClassifierHead(cfg.exp_channels, cfg.num_classes, cfg.drop_rate)
        self.out_channels = (c[2], c[3], cfg.exp_channels)
        self.out_strides = (8, 16, 32)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))
        p3 = self.layer3(x)
        p4 = self.layer4(p3)
        return [p3, p4, self.final_conv(self.layer5(p4))]


class MobileViTV2(Backbone):
    """MobileViT v2 backbone + classifier (no final expansion conv)."""

    def __init__(self, cfg: MobileViTV2Config) -> None:
        super().__init__()
        cfg.validate()
        c, d = cfg.stage_channels, cfg.attn_dims
        e = cfg.mv2_expansion
        self.stem = ConvNormAct(3, cfg.stem_channels, 3, stride=2)
        self.layer1 = _mv2_stage(cfg.stem_channels, c[0], cfg.mv2_blocks[0], 1, e)
        self.layer2 = _mv2_stage(c[0], c[1], cfg.mv2_blocks[1], 2, e)
        self.layer3, self.layer4, self.layer5 = (
            nn.Sequential(
                InvertedResidual(c[i + 1], c[i + 2], 2, e),
                MobileViTV2Block(c[i + 2], d[i], cfg.ffn_dim(d[i]), cfg.attn_blocks[i], cfg.patch_size),
            )
            for i in range(3)
        )
        self.head = ClassifierHead(c[4], cfg.num_classes, cfg.drop_rate)
        self.out_channels = (c[2], c[3], c[4])
        self.out_strides = (8, 16, 32)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer2(self.layer1(self.stem(x)))
        p3 = self.layer3(x)
        p4 = self.layer4(p3)
        return [p3, p4, self.layer5(p4)]


def build(cfg: MobileViTConfig) -> MobileViT:
    return MobileViT(cfg)


def build_v2(cfg: MobileViTV2Config) -> MobileViTV2:
    return MobileViTV2(cfg)


# --------------------------------------------------------------------------- presets
def _v1(channels, dims, expansion=4) -> MobileViTConfig:
    """v1 preset from the paper's table: FFN = 2 x d, heads 4, patch 2x2."""
    return MobileViTConfig(
        stage_channels=channels,
        mv2_expansion=expansion,
        transformer_dims=dims,
        ffn_dims=tuple(2 * d for d in dims),
    )


PRESETS = {
    "mobilevit_xxs": _v1((16, 24, 48, 64, 80), (64, 80, 96), expansion=2),
    "mobilevit_xs": _v1((32, 48, 64, 80, 96), (96, 120, 144)),
    "mobilevit_s": _v1((32, 64, 96, 128, 160), (144, 192, 240)),
}

PRESETS_V2 = {
    f"mobilevitv2_{round(w * 100):03d}": MobileViTV2Config(width_multiplier=w)
    for w in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
}

# Published ImageNet-1k top-1 at 256 px (ml-cvnets docs/source/en/general/README-model-zoo.md;
# v1 also the MobileViT paper, ICLR 2022).
PUBLISHED = {
    "mobilevit_xxs": Published(69.0, 256, "MobileViT paper (ICLR 2022), ml-cvnets model zoo"),
    "mobilevit_xs": Published(74.8, 256, "MobileViT paper (ICLR 2022), ml-cvnets model zoo"),
    "mobilevit_s": Published(78.4, 256, "MobileViT paper (ICLR 2022), ml-cvnets model zoo"),
}
PUBLISHED_V2 = {
    name: Published(top1, 256, "ml-cvnets model zoo (MobileViTv2, ImageNet-1k)")
    for name, top1 in zip(PRESETS_V2, (70.18, 75.56, 78.09, 79.65, 80.38, 80.84, 81.17))
}

_NOTES = ("MACs count conv/linear/attention matmuls (SDPA included); "
          "P5 is {p5}. Inputs whose stage maps are not patch multiples are resized inside the block.")

FAMILIES = [
    Family(
        name="mobilevit",
        config_cls=MobileViTConfig,
        build=build,
        presets=PRESETS,
        native_imgsz=256,
        description="MobileViT v1 (Apple ml-cvnets): MV2 + patch-wise MHSA transformer blocks",
        notes=_NOTES.format(p5="the final 1x1 expansion conv (min(4*C5, 960) channels)"),
        published=PUBLISHED,
    ),
    Family(
        name="mobilevitv2",
        config_cls=MobileViTV2Config,
        build=build_v2,
        presets=PRESETS_V2,
        native_imgsz=256,
        description="MobileViT v2 (Apple ml-cvnets): MV2 + separable linear self-attention",
        notes=_NOTES.format(p5="the L5 stage output (512 x width channels)"),
        published=PUBLISHED_V2,
    ),
]
