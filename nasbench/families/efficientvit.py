"""EfficientViT-M (Microsoft Research, cascaded group attention), as a parametric family.

Paper: "EfficientViT: Memory Efficient Vision Transformer with Cascaded Group Attention"
(Liu et al., CVPR 2023). Official code: microsoft/Cream, ``EfficientViT/classification/
model/efficientvit.py``; timm ``efficientvit_m0 … m5`` (not MIT's ``efficientvit_b*``).
The presets reproduce the official ImageNet models at 224 px, parameter for parameter
(1000-class head, unfused): M0 2,349,436; M1 2,980,560; M2 4,187,554; M3 6,900,722;
M4 8,804,228; M5 12,473,772 (identical to timm).

Layout (strides in brackets, default ``patch_size=16``):
  patch embed: four 3x3 s2 Conv-BN, ReLU between them              [16]
  stage 1: sandwich blocks                                          [16]  -> level 1
  stage 2: subsample + sandwich blocks                              [32]  -> level 2
  stage 3: subsample + sandwich blocks                              [64]  -> level 3
  head: global average pool -> BatchNorm1d -> Linear
so the three feature levels sit at strides 16/32/64: a detector's "P5" here is stride 64.
``patch_size=8`` makes the last patch-embed conv stride 1 (what Cream's downstream
detection backbone, and the YOLOv5 swap in seed 004, do), giving strides 8/16/32.

Sandwich block: residual DW3x3 Conv-BN, residual FFN, residual windowed cascaded group
attention, residual DW3x3 Conv-BN, residual FFN. Subsample: residual DW + FFN, then
PatchMerging (1x1 expand, DW3x3 s2, SE, 1x1), then residual DW + FFN.

Cascaded group attention: the input is split into ``heads`` equal channel groups; head i
sees group i plus head i-1's output, so every head's value width must equal the group
width (embed_dim / heads). That is the official "attn_ratio = embed_dim / (key_dim *
heads)" rule; it is a consequence of the cascade, hence derived, not a free knob. Each
head's query passes through its own depthwise conv (``query_kernels``), and a learned
bias per head and per relative offset (|dy|, |dx|) is added to the attention logits.

Windows: the official classification code builds each stage's attention for a window of
``min(window, stage resolution at 224 px)``, so stage 3 (4x4 at 224) has a 4x4 bias table,
not 7x7. The presets state that explicitly as ``window_sizes=(7, 7, 4)``; this is what the
published and timm parameter counts contain. At run time a map that fits in one window is
attended as a whole (the bias table is sliced to its size); a larger map is zero-padded
to window multiples and partitioned, as the official code does. Any input size works.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.families.base import Backbone, Family, Published
from nasbench.families.layers import ConvNormAct, SqueezeExcite


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class EfficientViTConfig:
    """EfficientViT-M. Per-stage tuples are indexed (stage 1, stage 2, stage 3).

    Defaults are EfficientViT-M0.
    """

    embed_dims: tuple[int, int, int] = (64, 128, 192)
    depths: tuple[int, int, int] = (1, 2, 3)  # sandwich blocks per stage
    heads: tuple[int, int, int] = (4, 4, 4)
    key_dims: tuple[int, int, int] = (16, 16, 16)  # query/key width per head
    # Attention window per stage (bias-table size). Stage 3 is 4 because the official
    # code clips the window to the 4x4 stage-3 map of a 224 px input.
    window_sizes: tuple[int, int, int] = (7, 7, 4)
    # Kernel of the depthwise conv on each head's query (head i uses entry i); one list
    # shared by all stages, so it needs at least max(heads) entries.
    query_kernels: tuple[int, ...] = (5, 5, 5, 5)
    ffn_ratio: float = 2.0  # FFN hidden width = int(embed_dim * ffn_ratio)
    # Patch-embed widths of its first three convs; None = (d/8, d/4, d/2), d = embed_dims[0].
    stem_widths: tuple[int, int, int] | None = None
    patch_size: int = 16  # 16: four s2 convs; 8: last patch-embed conv has stride 1
    merge_expand: int = 4  # PatchMerging hidden width = merge_expand * input width
    se_ratio: float = 0.25  # SE in PatchMerging: reduced width = se_ratio * hidden, to x8
    num_classes: int = 1000  # 0: no BN/Linear, forward returns pooled features
    drop_rate: float = 0.0  # dropout between the head's BN and Linear

    def validate(self) -> None:
        for name in ("embed_dims", "depths", "heads", "key_dims", "window_sizes"):
            if len(getattr(self, name)) != 3:
                raise ValueError(f"{name} needs 3 values (one per stage), got {getattr(self, name)}")
        for name in ("embed_dims", "heads", "key_dims", "window_sizes"):
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"every value of {name} must be >= 1, got {getattr(self, name)}")
        if any(d < 0 for d in self.depths):
            raise ValueError(f"depths must be >= 0, got {self.depths}")
        for stage, (dim, nh) in enumerate(zip(self.embed_dims, self.heads), start=1):
            if dim % nh:
                raise ValueError(f"stage {stage}: embed dim {dim} is not divisible by heads={nh} "
                                 "(cascaded attention splits channels equally)")
        if len(self.query_kernels) < max(self.heads):
            raise ValueError(f"query_kernels {self.query_kernels} has fewer entries than "
                             f"max(heads)={max(self.heads)}")
        if any(k < 1 or k % 2 == 0 for k in self.query_kernels):
            raise ValueError(f"query_kernels must be odd and positive, got {self.query_kernels}")
        if self.stem_widths is not None and (len(self.stem_widths) != 3 or min(self.stem_widths) < 1):
            raise ValueError(f"stem_widths needs 3 positive values, got {self.stem_widths}")
        if self.stem_widths is None and self.embed_dims[0] < 8:
            raise ValueError(f"embed_dims[0]={self.embed_dims[0]} < 8 leaves the default stem empty")
        if self.patch_size not in (8, 16):
            raise ValueError(f"patch_size must be 8 or 16, got {self.patch_size}")
        if min(int(d * self.ffn_ratio) for d in self.embed_dims) < 1:
            raise ValueError(f"ffn_ratio {self.ffn_ratio} gives an empty FFN")
        if self.merge_expand < 1 or self.se_ratio <= 0:
            raise ValueError(f"merge_expand must be >= 1 and se_ratio > 0, got "
                             f"{self.merge_expand}, {self.se_ratio}")
        if self.num_classes < 0 or not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"num_classes must be >= 0 and drop_rate in [0, 1), got "
                             f"{self.num_classes}, {self.drop_rate}")

    @property
    def stem(self) -> tuple[int, int, int]:
        d = self.embed_dims[0]
        return self.stem_widths if self.stem_widths is not None else (d // 8, d // 4, d // 2)

    def value_dim(self, stage: int) -> int:
        """Value width per head: the cascade forces embed_dim / heads."""
        return self.embed_dims[stage] // self.heads[stage]


def se_channels(channels: int, ratio: float, divisor: int = 8) -> int:
    """SE reduced width: nearest multiple of 8 (at least 8), as timm's SqueezeExcite rounds."""
    return max(divisor, int(channels * ratio + divisor / 2) // divisor * divisor)


# --------------------------------------------------------------------------- blocks
def conv_bn(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            relu: bool = False, zero_gamma: bool = False) -> ConvNormAct:
    """Conv (no bias) + BN (+ ReLU). ``zero_gamma`` starts a residual branch as identity,
    the official initialisation of the last BN in each residual branch."""
    layer = ConvNormAct(in_ch, out_ch, kernel, stride, groups, act=nn.ReLU if relu else None)
    if zero_gamma:
        nn.init.zeros_(layer.bn.weight)
    return layer


class Residual(nn.Module):
    """x + f(x). Holds no BN itself; ``fuse_for_deploy`` reaches the Conv-BNs inside."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class FFN(nn.Sequential):
    """1x1 Conv-BN -> ReLU -> 1x1 Conv-BN (no norm/act outside the convs)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(conv_bn(dim, hidden, relu=True), conv_bn(hidden, dim, zero_gamma=True))


def dw_conv_bn(dim: int, zero_gamma: bool = False) -> ConvNormAct:
    return conv_bn(dim, dim, 3, groups=dim, zero_gamma=zero_gamma)


def relative_offset_index(window: int) -> torch.Tensor:
    """[w, w, w, w] long: bias-table column of the offset between (y1, x1) and (y2, x2).

    Offsets are (|dy|, |dx|), stored at |dy| * w + |dx|: the order in which the official
    code first meets them scanning the window row-major, so its checkpoints index alike.
    """
    coords = torch.arange(window)
    dist = (coords[:, None] - coords[None, :]).abs()  # [w, w]: |a - b|
    return dist[:, None, :, None] * window + dist[None, :, None, :]


# Which attention kernel runs where, chosen by measurement (benchmarks/efficientvit_attention.py,
# results/efficientvit_attention_cpu.md): on the CPU, SDPA with a float mask takes PyTorch's
# generic path, and one baddbmm (bias + scaled q^T k) + softmax + bmm is faster; on CUDA SDPA
# is kept (its fused kernels; not yet measured here). MACs are the same either way.
ATTENTION_KERNEL = {"cpu": "matmul", "cuda": "sdpa"}


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float,
           kernel: str) -> torch.Tensor:
    """softmax(q^T k * scale + bias) applied to v, for [B, C, N] q, k, v and an [N, N] bias;
    returns [B, Cv, N]."""
    if kernel == "sdpa":
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=bias, scale=scale)
        return out.transpose(1, 2)
    logits = torch.baddbmm(bias.expand(q.shape[0], -1, -1), q.transpose(1, 2), k, alpha=scale)
    return v @ logits.softmax(dim=-1).transpose(1, 2)


class CascadedGroupAttention(nn.Module):
    """Attention over one window batch [B, C, h, w] with h, w <= ``window``.

    Head i: (split_i + previous head's output) -> 1x1 Conv-BN to q, k, v -> depthwise
    Conv-BN on q -> softmax(q^T k * scale + bias_i) -> v. Heads concat -> ReLU -> 1x1 Conv-BN.
    """

    def __init__(self, dim: int, heads: int, key_dim: int, window: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim = key_dim
        self.value_dim = dim // heads  # forced by the cascade (see module docstring)
        self.scale = key_dim ** -0.5
        self.window = window
        group = dim // heads
        self.qkvs = nn.ModuleList(conv_bn(group, 2 * key_dim + self.value_dim) for _ in range(heads))
        self.query_dws = nn.ModuleList(
            conv_bn(key_dim, key_dim, kernels[i], groups=key_dim) for i in range(heads))
        self.proj = nn.Sequential(nn.ReLU(), conv_bn(self.value_dim * heads, dim, zero_gamma=True))
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        # Precomputed so forward only slices and gathers (no Python on tensor values).
        self.register_buffer("bias_index", relative_offset_index(window), persistent=False)
        self.kernel: str | None = None  # "sdpa" | "matmul"; None: ATTENTION_KERNEL for the device
        self._bias_cache: dict[tuple, torch.Tensor] = {}

    def bias_for(self, h: int, w: int) -> torch.Tensor:
        """[heads, h*w, h*w] bias for an h x w window (a corner slice of the full table)."""
        index = self.bias_index[:h, :w, :h, :w].reshape(h * w, h * w)
        return self.attention_biases[:, index]

    def cached_bias(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """``bias_for`` gathered once per window size when no gradient is recorded.

        The gather is a measurable share of a small model's forward on the CPU (timm caches
        it too). The key holds the table's version counter, which every in-place write
        (an optimiser step, ``load_state_dict``) bumps, and its storage, which ``.to()``
        replaces, so a stale bias is never served. Under autograd or a tracer the bias is
        gathered each call, as the graph needs.
        """
        table = self.attention_biases
        if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return self.bias_for(h, w).to(dtype)
        key = (h, w, dtype, table.device, table.data_ptr(), table._version, torch.is_inference_mode_enabled())
        if key not in self._bias_cache:
            self._bias_cache.clear()  # one window size at a time: keeps memory flat when sizes vary
            self._bias_cache[key] = self.bias_for(h, w).to(dtype)
        return self._bias_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        bias = self.cached_bias(h, w, x.dtype)
        kernel = self.kernel or ATTENTION_KERNEL.get(x.device.type, "sdpa")
        groups = x.chunk(self.heads, dim=1)
        outputs = []
        feat = groups[0]
        for i in range(self.heads):
            if i > 0:  # the cascade: next head refines the previous head's output
                feat = feat + groups[i]
            q, k, v = self.qkvs[i](feat).split([self.key_dim, self.key_dim, self.value_dim], dim=1)
            q = self.query_dws[i](q)
            out = attend(q.flatten(2), k.flatten(2), v.flatten(2), bias[i], self.scale, kernel)  # [B, C, h*w]
            feat = out.reshape(b, self.value_dim, h, w)
            outputs.append(feat)
        return self.proj(torch.cat(outputs, dim=1))


class LocalWindowAttention(nn.Module):
    """Runs ``CascadedGroupAttention`` in non-overlapping windows of ``window`` x ``window``.

    A map no larger than the window on both axes is attended whole. Otherwise it is
    zero-padded at the bottom/right to multiples of the window (both axes, as the official
    code does; padded tokens are attended unmasked there too), split, attended per window,
    merged and cropped back.
    """

    def __init__(self, dim: int, heads: int, key_dim: int, window: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.window = window
        self.attn = CascadedGroupAttention(dim, heads, key_dim, window, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if h <= self.window and w <= self.window:
            return self.attn(x)
        win = self.window
        pad_h, pad_w = -h % win, -w % win
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        n_h, n_w = (h + pad_h) // win, (w + pad_w) // win
        windows = (x.reshape(b, c, n_h, win, n_w, win).permute(0, 2, 4, 1, 3, 5)
                   .reshape(b * n_h * n_w, c, win, win))
        out = self.attn(windows)
        out = (out.reshape(b, n_h, n_w, c, win, win).permute(0, 3, 1, 4, 2, 5)
               .reshape(b, c, h + pad_h, w + pad_w))
        return out[:, :, :h, :w] if pad_h or pad_w else out


class SandwichBlock(nn.Sequential):
    """DW + FFN, one (memory-bound) attention, DW + FFN; every part residual."""

    def __init__(self, dim: int, heads: int, key_dim: int, window: int,
                 kernels: tuple[int, ...], ffn_ratio: float) -> None:
        hidden = int(dim * ffn_ratio)
        super().__init__(
            Residual(dw_conv_bn(dim, zero_gamma=True)),
            Residual(FFN(dim, hidden)),
            Residual(LocalWindowAttention(dim, heads, key_dim, window, kernels)),
            Residual(dw_conv_bn(dim, zero_gamma=True)),
            Residual(FFN(dim, hidden)),
        )


class PatchMerging(nn.Sequential):
    """Stride-2 downsample: 1x1 expand -> ReLU -> DW3x3 s2 -> ReLU -> SE -> 1x1 project."""

    def __init__(self, in_dim: int, out_dim: int, expand: int, se_ratio: float) -> None:
        hidden = in_dim * expand
        super().__init__(
            conv_bn(in_dim, hidden, relu=True),
            conv_bn(hidden, hidden, 3, stride=2, groups=hidden, relu=True),
            SqueezeExcite(hidden, se_channels(hidden, se_ratio)),
            conv_bn(hidden, out_dim),
        )


class Subsample(nn.Sequential):
    """Between stages: residual DW + FFN at the old width, PatchMerging, DW + FFN at the new."""

    def __init__(self, in_dim: int, out_dim: int, cfg: EfficientViTConfig) -> None:
        super().__init__(
            Residual(dw_conv_bn(in_dim)),
            Residual(FFN(in_dim, int(in_dim * cfg.ffn_ratio))),
            PatchMerging(in_dim, out_dim, cfg.merge_expand, cfg.se_ratio),
            Residual(dw_conv_bn(out_dim)),
            Residual(FFN(out_dim, int(out_dim * cfg.ffn_ratio))),
        )


class NormLinearHead(nn.Module):
    """Global average pool -> BatchNorm1d -> dropout -> Linear; ``fuse()`` folds the BN
    into the Linear. ``num_classes=0``: no BN, no Linear, returns the pooled features."""

    def __init__(self, in_ch: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm1d(in_ch) if num_classes > 0 else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.fc, nn.Linear):
            nn.init.trunc_normal_(self.fc.weight, std=0.02)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.norm(x.mean((2, 3)))))

    @torch.no_grad()
    def fuse(self) -> None:
        """Linear(BN(x)) = (W * s) x + (b + W @ (beta - mean * s)), s = gamma / std."""
        if not isinstance(self.norm, nn.BatchNorm1d) or not isinstance(self.fc, nn.Linear):
            return
        bn, fc = self.norm, self.fc
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(fc.in_features, fc.out_features).to(fc.weight.device, fc.weight.dtype)
        fused.weight.copy_(fc.weight * scale[None, :])
        fused.bias.copy_(fc.bias + fc.weight @ shift)
        self.norm, self.fc = nn.Identity(), fused


# --------------------------------------------------------------------------- model
class EfficientViT(Backbone):
    """EfficientViT-M backbone: three stage outputs at strides (p, 2p, 4p), p = patch_size."""

    def __init__(self, cfg: EfficientViTConfig) -> None:
        super().__init__()
        dims, p = cfg.embed_dims, cfg.patch_size
        s1, s2, s3 = cfg.stem
        self.patch_embed = nn.Sequential(
            conv_bn(3, s1, 3, stride=2, relu=True),
            conv_bn(s1, s2, 3, stride=2, relu=True),
            conv_bn(s2, s3, 3, stride=2, relu=True),
            conv_bn(s3, dims[0], 3, stride=2 if p == 16 else 1),
        )
        stages = []
        for i in range(3):
            layers: list[nn.Module] = [Subsample(dims[i - 1], dims[i], cfg)] if i > 0 else []
            layers += [SandwichBlock(dims[i], cfg.heads[i], cfg.key_dims[i], cfg.window_sizes[i],
                                     cfg.query_kernels, cfg.ffn_ratio) for _ in range(cfg.depths[i])]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = NormLinearHead(dims[-1], cfg.num_classes, cfg.drop_rate)
        self.out_channels = tuple(dims)
        self.out_strides = (p, 2 * p, 4 * p)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return levels


def build(cfg: EfficientViTConfig) -> EfficientViT:
    cfg.validate()
    return EfficientViT(cfg)


# --------------------------------------------------------------------------- presets
def _preset(dims: tuple[int, int, int], depths: tuple[int, int, int], heads: tuple[int, int, int],
            kernels: tuple[int, ...]) -> EfficientViTConfig:
    return EfficientViTConfig(embed_dims=dims, depths=depths, heads=heads, query_kernels=kernels)


# Cream EfficientViT/classification/model/build.py (key dim 16, window 7 clipped to 4 in stage 3).
PRESETS: dict[str, EfficientViTConfig] = {
    "efficientvit_m0": _preset((64, 128, 192), (1, 2, 3), (4, 4, 4), (5, 5, 5, 5)),
    "efficientvit_m1": _preset((128, 144, 192), (1, 2, 3), (2, 3, 3), (7, 5, 3, 3)),
    "efficientvit_m2": _preset((128, 192, 224), (1, 2, 3), (4, 3, 2), (7, 5, 3, 3)),
    "efficientvit_m3": _preset((128, 240, 320), (1, 2, 3), (4, 3, 4), (5, 5, 5, 5)),
    "efficientvit_m4": _preset((128, 256, 384), (1, 2, 3), (4, 4, 4), (7, 5, 3, 3)),
    "efficientvit_m5": _preset((192, 288, 384), (1, 3, 4), (3, 3, 4), (7, 5, 3, 3)),
}

# Published ImageNet-1k top-1 at 224 px (Cream EfficientViT/classification/README.md).
PUBLISHED = {
    name: Published(top1, 224, "EfficientViT paper (CVPR 2023), Cream EfficientViT/classification README")
    for name, top1 in zip(PRESETS, (63.2, 68.4, 70.8, 73.4, 74.3, 77.1))
}

_NOTES = (
    "Feature levels are the three stage outputs at strides 16/32/64 (patch_size=16): a "
    "detector's P5 is stride 64. patch_size=8 (last patch-embed conv stride 1, as in Cream's "
    "downstream backbone) gives strides 8/16/32. window_sizes (7, 7, 4) reproduce the "
    "official code, which clips the 7x7 window to the 4x4 stage-3 map at 224 px. Value width "
    "per head = embed_dim / heads (forced by the cascade). num_classes=0: identity head (no "
    "BN/Linear), forward returns pooled features. Deploy form folds every Conv-BN and the "
    "head's BN into its Linear. Published FLOPs are MACs."
)

FAMILIES = [
    Family(
        name="efficientvit",
        config_cls=EfficientViTConfig,
        build=build,
        presets=PRESETS,
        native_imgsz=224,
        description="EfficientViT-M (Microsoft, CVPR 2023): sandwich blocks with cascaded group attention",
        notes=_NOTES,
        has_deploy_form=True,
        published=PUBLISHED,
    ),
]
