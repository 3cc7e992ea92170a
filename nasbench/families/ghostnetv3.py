"""GhostNetV3: compact CNN trained with re-parameterisable branches (training form) and
folded into a plain Ghost network for inference (deploy form).

Paper: "GhostNetV3: Exploring the Training Strategies for Compact Models",
arXiv 2404.11202. Official code: huawei-noah/Efficient-AI-Backbones,
``ghostnetv3_pytorch/ghostnetv3.py``; timm has it as ``ghostnetv3_050/100/130/160``.

The network is GhostNet's (stem 3x3 s2, 16 Ghost bottlenecks, 1x1 conv to 960w, pooled
1x1 conv to 1280, classifier) with two changes:
- every re-parameterisable conv (the Ghost module's primary 1x1 and cheap depthwise 3x3,
  and the bottleneck's stride-2 depthwise conv) is trained as ``num_conv_branches``
  parallel Conv-BN branches, plus a 1x1 Conv-BN "scale" branch when the kernel is larger
  than 1, plus a BN "identity" branch when input and output shapes agree;
- the expanding Ghost module of every block from ``dfc_first_block`` on (the official
  code: ``layer_id > 1``) is gated by GhostNetV2's DFC attention.

``fuse()`` turns each branch set into one biased conv and folds every remaining BN, so
the deploy form is a plain GhostNetV2-style network.

Presets reproduce the 0.5x/1.0x/1.3x/1.6x widths. Parameter counts (1000 classes):
training form equals timm's ``ghostnetv3_*`` count exactly; the fully folded deploy form
is timm's ``convert_to_deploy`` count minus the BN parameters it keeps in the
non-re-parameterised convs (the paper's 6.1M / 8.9M / 12.3M for 1.0x / 1.3x / 1.6x).

Feature levels are the outputs of the LAST block at strides 8, 16 and 32 (40w, 112w and
160w channels). The 1x1 conv to 960w is treated as part of the classification head: it
is a channel expansion that only serves global pooling (as in MobileNetV3), a detector
neck gains nothing from a 6x wider P5 it must project back down, and timm's features
also stop at a 160w block output. (timm takes the FIRST block of each stride instead,
which skips the 112w blocks at stride 16; we keep the deepest block of each stride.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.families.base import Backbone, Family, Published
from nasbench.families.layers import ConvNormAct, SqueezeExcite, fold_bn, make_divisible

# One row per Ghost bottleneck: (dw kernel, expansion channels, out channels, SE ratio,
# stride), channels at width 1.0. Identical in the official code and timm.
GHOSTNETV3_BLOCKS: tuple[tuple[int, int, int, float, int], ...] = (
    (3, 16, 16, 0.0, 1),
    (3, 48, 24, 0.0, 2),
    (3, 72, 24, 0.0, 1),
    (5, 72, 40, 0.25, 2),
    (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0.0, 2),
    (3, 200, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 480, 112, 0.25, 1),
    (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
)

CHANNEL_DIVISOR = 4  # GhostNet rounds every width-scaled channel count to a multiple of 4
STEM_STRIDE = 2


@dataclass(frozen=True)
class GhostNetV3Config:
    """Knobs of GhostNetV3. Defaults = ``ghostnetv3_100``."""

    width: float = 1.0  # multiplies every channel count except head_channels
    # (kernel, expansion, out, SE ratio, stride) per block, channels at width 1.0
    blocks: tuple[tuple[int, int, int, float, int], ...] = GHOSTNETV3_BLOCKS
    stem_channels: int = 16  # at width 1.0
    num_conv_branches: int = 3  # parallel Conv-BN branches per re-parameterisable conv
    use_dfc: bool = True  # DFC attention gate on the expanding Ghost module
    dfc_first_block: int = 2  # 0-based index of the first block that gets DFC (official: 2)
    final_channels: int = 960  # 1x1 conv before pooling, at width 1.0
    head_channels: int = 1280  # pooled 1x1 conv; NOT width-scaled (official)
    drop_rate: float = 0.2  # dropout before the classifier (timm applies it; official leaves it off)
    num_classes: int = 1000

    def validate(self) -> None:
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        if not self.blocks:
            raise ValueError("blocks must hold at least one (kernel, exp, out, se, stride) row")
        for i, row in enumerate(self.blocks):
            if len(row) != 5:
                raise ValueError(f"block {i}: expected (kernel, exp, out, se, stride), got {row}")
            k, exp, out, se, stride = row
            if k < 1 or k % 2 == 0:
                raise ValueError(f"block {i}: kernel must be odd and >= 1 (branches are centre-aligned), got {k}")
            if exp < 1 or out < 1:
                raise ValueError(f"block {i}: expansion and out channels must be >= 1, got {exp}, {out}")
            if not 0.0 <= se < 1.0:
                raise ValueError(f"block {i}: SE ratio must be in [0, 1), got {se}")
            if stride not in (1, 2):
                raise ValueError(f"block {i}: stride must be 1 or 2, got {stride}")
        if len(set(block_strides(self.blocks))) < 3:
            raise ValueError("blocks must reach at least three stride levels to give three feature levels")
        if self.num_conv_branches < 1:
            raise ValueError(f"num_conv_branches must be >= 1, got {self.num_conv_branches}")
        if self.dfc_first_block < 0:
            raise ValueError(f"dfc_first_block must be >= 0, got {self.dfc_first_block}")
        if min(self.stem_channels, self.final_channels, self.head_channels) < 1:
            raise ValueError("stem_channels, final_channels and head_channels must be >= 1")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")


def scaled(channels: float, width: float) -> int:
    """Width-scaled channel count, rounded as GhostNet does (multiple of 4)."""
    return make_divisible(channels * width, CHANNEL_DIVISOR)


def block_strides(blocks: tuple[tuple[int, int, int, float, int], ...]) -> list[int]:
    """Total stride (w.r.t. the input) of each block's output."""
    strides, total = [], STEM_STRIDE
    for *_, stride in blocks:
        total *= stride
        strides.append(total)
    return strides


def feature_block_indices(blocks: tuple[tuple[int, int, int, float, int], ...]) -> list[int]:
    """Index of the last block of each of the three deepest stride levels."""
    strides = block_strides(blocks)
    last_of_level = {s: i for i, s in enumerate(strides)}  # later blocks overwrite earlier
    return [last_of_level[s] for s in sorted(last_of_level)[-3:]]


class RepConvBN(nn.Module):
    """A conv trained as a sum of parallel Conv-BN branches, foldable into one conv.

    Training form: ``num_branches`` kxk Conv-BN + (k > 1) a 1x1 Conv-BN scale branch +
    (same shape in and out) a BN identity branch, summed, then the activation. Every
    branch is linear in eval mode and centre-aligned, so their kernels add up.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        num_branches: int = 3,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.stride, self.groups = stride, groups
        self.branches = nn.ModuleList(
            ConvNormAct(in_ch, out_ch, kernel_size, stride, groups, act=None) for _ in range(num_branches)
        )
        self.scale = ConvNormAct(in_ch, out_ch, 1, stride, groups, act=None) if kernel_size > 1 else None
        self.skip = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        out = sum(branch(x) for branch in self.branches)
        if self.scale is not None:
            out = out + self.scale(x)
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(out)

    def _identity_kernel(self, like: torch.Tensor) -> torch.Tensor:
        """The kxk (grouped) kernel of an identity map, centre tap = 1."""
        in_per_group = self.in_ch // self.groups
        kernel = torch.zeros(
            self.out_ch, in_per_group, self.kernel_size, self.kernel_size, dtype=like.dtype, device=like.device
        )
        channels = torch.arange(self.out_ch, device=like.device)
        centre = self.kernel_size // 2
        kernel[channels, channels % in_per_group, centre, centre] = 1.0
        return kernel

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single conv equal to all branches in eval mode."""
        weights, biases = [], []
        for branch in self.branches:
            w, b = fold_bn(branch.conv.weight, branch.conv.bias, branch.bn)
            weights.append(w)
            biases.append(b)
        if self.scale is not None:
            w, b = fold_bn(self.scale.conv.weight, self.scale.conv.bias, self.scale.bn)
            pad = self.kernel_size // 2
            weights.append(F.pad(w, [pad, pad, pad, pad]))  # 1x1 -> kxk at the centre tap
            biases.append(b)
        if self.skip is not None:
            w, b = fold_bn(self._identity_kernel(weights[0]), None, self.skip)
            weights.append(w)
            biases.append(b)
        return torch.stack(weights).sum(0), torch.stack(biases).sum(0)

    @torch.no_grad()
    def fuse(self) -> None:
        """Replace the branches by one biased conv (eval statistics); idempotent."""
        if self.fused is not None:
            return
        weight, bias = self.equivalent_kernel_bias()
        conv = nn.Conv2d(
            self.in_ch, self.out_ch, self.kernel_size, self.stride, self.kernel_size // 2,
            groups=self.groups, bias=True,
        ).to(weight.device, weight.dtype)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        self.fused = conv
        self.branches = nn.ModuleList()
        self.scale = None
        self.skip = None


class DFCGate(nn.Module):
    """GhostNetV2's decoupled fully-connected attention, as a multiplicative gate.

    Computed at half resolution (cheap), as horizontal then vertical depthwise "FC"
    layers, then upsampled (nearest) to the gated map's size.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.proj = ConvNormAct(in_ch, out_ch, 1, act=None)
        self.horizontal = ConvNormAct(out_ch, out_ch, (1, 5), groups=out_ch, act=None)
        self.vertical = ConvNormAct(out_ch, out_ch, (5, 1), groups=out_ch, act=None)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # A map of 1 px in either side (inputs under 33 px, e.g. 32-px proxy training) cannot
        # be halved: gate it at full resolution. From 2 px up this is the official pooling.
        pooled = F.avg_pool2d(x, kernel_size=2, stride=2) if min(x.shape[-2:]) >= 2 else x
        g = self.vertical(self.horizontal(self.proj(pooled)))
        return F.interpolate(torch.sigmoid(g), size=size, mode="nearest")


class RepGhostModule(nn.Module):
    """Ghost module: half the channels from a 1x1 conv, the other half from a cheap
    depthwise 3x3 on them; both re-parameterisable; optionally DFC-gated."""

    def __init__(self, in_ch: int, out_ch: int, relu: bool, num_branches: int, dfc: bool) -> None:
        super().__init__()
        self.out_ch = out_ch
        primary_ch = math.ceil(out_ch / 2)  # ratio 2: cheap op makes as many as the primary
        self.primary = RepConvBN(in_ch, primary_ch, 1, num_branches=num_branches, act=relu)
        self.cheap = RepConvBN(primary_ch, primary_ch, 3, groups=primary_ch, num_branches=num_branches, act=relu)
        self.gate = DFCGate(in_ch, out_ch) if dfc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(x)
        out = torch.cat([primary, self.cheap(primary)], dim=1)[:, : self.out_ch]
        if self.gate is not None:
            out = out * self.gate(x, out.shape[-2:])
        return out


class GhostBottleneckV3(nn.Module):
    """Ghost (expand, ReLU) -> [rep. depthwise stride 2] -> [SE] -> Ghost (project) + shortcut."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int,
        se_ratio: float,
        num_branches: int,
        dfc: bool,
    ) -> None:
        super().__init__()
        self.ghost1 = RepGhostModule(in_ch, mid_ch, relu=True, num_branches=num_branches, dfc=dfc)
        self.dw: nn.Module = (
            RepConvBN(mid_ch, mid_ch, kernel_size, stride, groups=mid_ch, num_branches=num_branches)
            if stride > 1
            else nn.Identity()
        )
        self.se: nn.Module = (
            SqueezeExcite(mid_ch, make_divisible(mid_ch * se_ratio, CHANNEL_DIVISOR), nn.ReLU, nn.Hardsigmoid)
            if se_ratio > 0
            else nn.Identity()
        )
        self.ghost2 = RepGhostModule(mid_ch, out_ch, relu=False, num_branches=num_branches, dfc=False)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_ch == out_ch and stride == 1
            else nn.Sequential(
                ConvNormAct(in_ch, in_ch, kernel_size, stride, groups=in_ch, act=None),
                ConvNormAct(in_ch, out_ch, 1, act=None),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)


class GhostNetV3Head(nn.Module):
    """1x1 conv-BN-ReLU to 960w -> global pool -> 1x1 conv to 1280 -> ReLU -> dropout -> FC."""

    def __init__(self, in_ch: int, final_ch: int, head_ch: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.final_conv = ConvNormAct(in_ch, final_ch, 1, act=nn.ReLU)
        self.conv_head = nn.Conv2d(final_ch, head_ch, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(head_ch, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.final_conv(x).mean((2, 3), keepdim=True)
        return self.fc(self.drop(self.act(self.conv_head(pooled)).flatten(1)))


class GhostNetV3(Backbone):
    def __init__(self, cfg: GhostNetV3Config) -> None:
        super().__init__()
        stem_ch = scaled(cfg.stem_channels, cfg.width)
        self.stem = ConvNormAct(3, stem_ch, 3, STEM_STRIDE, act=nn.ReLU)
        blocks, in_ch = [], stem_ch
        for i, (k, exp, out, se, stride) in enumerate(cfg.blocks):
            out_ch = scaled(out, cfg.width)
            blocks.append(
                GhostBottleneckV3(
                    in_ch, scaled(exp, cfg.width), out_ch, k, stride, se,
                    num_branches=cfg.num_conv_branches,
                    dfc=cfg.use_dfc and i >= cfg.dfc_first_block,
                )
            )
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.feature_indices = tuple(feature_block_indices(cfg.blocks))
        strides = block_strides(cfg.blocks)
        self.out_strides = tuple(strides[i] for i in self.feature_indices)
        self.out_channels = tuple(scaled(cfg.blocks[i][2], cfg.width) for i in self.feature_indices)
        self.head = GhostNetV3Head(
            in_ch, scaled(cfg.final_channels, cfg.width), cfg.head_channels, cfg.num_classes, cfg.drop_rate
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.feature_indices:
                features.append(x)
        return features


def build(cfg: GhostNetV3Config) -> GhostNetV3:
    cfg.validate()
    return GhostNetV3(cfg)


PRESETS: dict[str, GhostNetV3Config] = {
    "ghostnetv3_050": GhostNetV3Config(width=0.5),
    "ghostnetv3_100": GhostNetV3Config(width=1.0),
    "ghostnetv3_130": GhostNetV3Config(width=1.3),
    "ghostnetv3_160": GhostNetV3Config(width=1.6),
}

# Published ImageNet-1k top-1 at 224 px (0.5x: none found). Trained with re-parameterisation
# and distillation; 1.0x/1.6x are a secondary source.
PUBLISHED = {
    "ghostnetv3_100": Published(77.1, 224, "iFormer paper Table 3 (secondary; GhostNetV3 with distillation)"),
    "ghostnetv3_130": Published(79.1, 224, "GhostNetV3 paper abstract (arXiv 2404.11202)"),
    "ghostnetv3_160": Published(80.4, 224, "iFormer paper Table 3 (secondary; GhostNetV3 with distillation)"),
}

FAMILIES = [
    Family(
        name="ghostnetv3",
        config_cls=GhostNetV3Config,
        build=build,
        presets=PRESETS,
        native_imgsz=224,
        description="GhostNetV3 (arXiv 2404.11202): re-parameterisable Ghost modules + DFC attention",
        notes=(
            "Training form has num_conv_branches Conv-BN branches (+1x1 scale, +BN identity) per rep. conv; "
            "fuse_for_deploy folds them into single convs and folds every BN. Published params/MACs are the "
            "deploy form (1.0x: 6.1M, 0.17 GMACs). Features: last block output at strides 8/16/32 "
            "(40w/112w/160w ch); the 960w 1x1 conv belongs to the classification head."
        ),
        has_deploy_form=True,
        published=PUBLISHED,
    )
]
