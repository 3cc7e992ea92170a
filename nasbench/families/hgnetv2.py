"""HGNetv2: the all-convolution backbone of RT-DETR-l.

Origin: PaddlePaddle's PP-HGNetV2 (PaddleDetection ``ppdet/modeling/backbones/hgnet_v2.py``,
PaddleClas ``PPHGNetV2_B4``), used by RT-DETR (arXiv 2304.08069, lyuwenyu/RT-DETR) and
re-expressed as a layer list in Ultralytics' ``ultralytics/cfg/models/rt-detr/rtdetr-l.yaml``
(``HGStem``, ``HGBlock``, ``LightConv`` and ``DWConv`` in ``ultralytics/nn/modules``).
timm has the same trunk as ``hgnetv2_b4``.

Layout (preset ``hgnetv2_l`` = the backbone of Ultralytics' rtdetr-l):
- stem (/4): 3x3 s2 conv, then two branches on a right/bottom zero-padded map: a 2x2
  max-pool and two 2x2 convs (C -> C/2 -> C); their concat goes through a 3x3 s2 conv and
  a 1x1 conv to ``stem_channels[1]``. All stem convs use ReLU.
- four stages; stages 2-4 start with a 3x3 s2 depthwise conv + BN (no activation).
- each stage is a stack of HG blocks. An HG block chains ``layers_per_block`` convs
  (plain kxk conv, or a "light" conv = 1x1 conv without activation then kxk depthwise
  conv), concatenates the block input with every intermediate output, then squeezes the
  concat with a 1x1 conv to out/2 channels and expands it with a 1x1 conv to out
  channels. Every block but the first of a stage adds its input back (the first changes
  the width, so it cannot).

Feature levels are the outputs of stages 2, 3 and 4 (strides 8, 16, 32; 512, 1024, 2048
channels for ``hgnetv2_l``), exactly the P3/P4/P5 that rtdetr-l takes from layers 3, 7
and 9 of its yaml.

The classifier (global average pool -> dropout -> linear) exists only so the backbone
can be trained/evaluated as a classifier on its own. Ultralytics' rtdetr-l has no
classifier, and PaddleClas/timm's HGNetv2 head is different (an extra 1x1 conv to 2048
after pooling), so the classifier parameter count is ours; the trunk count (13,553,376)
equals timm ``hgnetv2_b4`` without its head and Ultralytics' rtdetr-l layers 0-9.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.families.base import Backbone, Family
from nasbench.families.layers import ClassifierHead, ConvNormAct

NUM_STAGES = 4
STEM_STRIDE = 4
# Strides of the outputs of stages 1..4: the stem reaches /4 and stages 2-4 halve.
STAGE_STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class HGNetV2Config:
    """Knobs of HGNetv2. Defaults = ``hgnetv2_l`` (RT-DETR-l's backbone, PP-HGNetV2-B4)."""

    stem_channels: tuple[int, int] = (32, 48)  # (mid, out) of the stem
    mid_channels: tuple[int, ...] = (48, 96, 192, 384)  # per stage: width of the chained convs
    out_channels: tuple[int, ...] = (128, 512, 1024, 2048)  # per stage: block output width
    blocks: tuple[int, ...] = (1, 1, 3, 1)  # HG blocks per stage
    layers_per_block: tuple[int, ...] = (6, 6, 6, 6)  # chained convs inside each HG block
    kernel_sizes: tuple[int, ...] = (3, 3, 5, 5)  # kernel of the chained convs per stage
    light: tuple[bool, ...] = (False, False, True, True)  # light (1x1 + depthwise) convs per stage
    num_classes: int = 1000
    drop_rate: float = 0.0  # dropout before the classifier

    def validate(self) -> None:
        per_stage = {
            "mid_channels": self.mid_channels,
            "out_channels": self.out_channels,
            "blocks": self.blocks,
            "layers_per_block": self.layers_per_block,
            "kernel_sizes": self.kernel_sizes,
            "light": self.light,
        }
        for name, values in per_stage.items():
            if len(values) != NUM_STAGES:
                raise ValueError(f"{name} needs {NUM_STAGES} per-stage values, got {len(values)}")
        if len(self.stem_channels) != 2 or min(self.stem_channels) < 2:
            raise ValueError(f"stem_channels must be (mid, out) with both >= 2, got {self.stem_channels}")
        if self.stem_channels[0] % 2:
            raise ValueError(f"stem_channels[0] must be even (the stem halves it), got {self.stem_channels[0]}")
        for name in ("mid_channels", "blocks", "layers_per_block"):
            if min(per_stage[name]) < 1:
                raise ValueError(f"every {name} value must be >= 1, got {per_stage[name]}")
        if min(self.out_channels) < 2 or any(c % 2 for c in self.out_channels):
            raise ValueError(f"out_channels must be even and >= 2 (squeezed to half), got {self.out_channels}")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd and >= 1, got {self.kernel_sizes}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")


class HGStem(nn.Module):
    """Stem to stride 4: conv s2, a pooled and a convolved 2x2 branch, conv s2, 1x1 conv."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.stem1 = ConvNormAct(in_ch, mid_ch, 3, stride=2, act=nn.ReLU)
        self.stem2a = ConvNormAct(mid_ch, mid_ch // 2, 2, padding=0, act=nn.ReLU)
        self.stem2b = ConvNormAct(mid_ch // 2, mid_ch, 2, padding=0, act=nn.ReLU)
        self.stem3 = ConvNormAct(2 * mid_ch, mid_ch, 3, stride=2, act=nn.ReLU)
        self.stem4 = ConvNormAct(mid_ch, out_ch, 1, act=nn.ReLU)
        # 2x2 windows with stride 1 on a map padded by one row/column keep the size.
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(self.stem1(x), [0, 1, 0, 1])  # pad right and bottom only
        conv_branch = self.stem2b(F.pad(self.stem2a(x), [0, 1, 0, 1]))
        pool_branch = self.pool(x)
        return self.stem4(self.stem3(torch.cat([pool_branch, conv_branch], dim=1)))


class LightConv(nn.Module):
    """1x1 conv + BN (no activation) then kxk depthwise conv + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        self.pw = ConvNormAct(in_ch, out_ch, 1, act=None)
        self.dw = ConvNormAct(out_ch, out_ch, kernel_size, groups=out_ch, act=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw(x))


class HGBlock(nn.Module):
    """Chain ``n_layers`` convs, concat input + all outputs, squeeze to out/2, expand to out."""

    def __init__(
        self, in_ch: int, mid_ch: int, out_ch: int, kernel_size: int, n_layers: int, light: bool, shortcut: bool
    ) -> None:
        super().__init__()

        def chained_conv(cin: int) -> nn.Module:
            if light:
                return LightConv(cin, mid_ch, kernel_size)
            return ConvNormAct(cin, mid_ch, kernel_size, act=nn.ReLU)

        self.layers = nn.ModuleList(chained_conv(in_ch if i == 0 else mid_ch) for i in range(n_layers))
        self.squeeze = ConvNormAct(in_ch + n_layers * mid_ch, out_ch // 2, 1, act=nn.ReLU)
        self.excite = ConvNormAct(out_ch // 2, out_ch, 1, act=nn.ReLU)
        # A residual needs equal widths; Ultralytics applies the same condition.
        self.add_input = shortcut and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for layer in self.layers:
            outputs.append(layer(outputs[-1]))
        y = self.excite(self.squeeze(torch.cat(outputs, dim=1)))
        return y + x if self.add_input else y


class HGStage(nn.Sequential):
    """Optional 3x3 s2 depthwise downsample (BN, no activation), then HG blocks."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        out_ch: int,
        n_blocks: int,
        kernel_size: int,
        n_layers: int,
        light: bool,
        downsample: bool,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if downsample:
            layers["downsample"] = ConvNormAct(in_ch, in_ch, 3, stride=2, groups=in_ch, act=None)
        for i in range(n_blocks):
            layers[f"block{i}"] = HGBlock(
                in_ch if i == 0 else out_ch, mid_ch, out_ch, kernel_size, n_layers, light, shortcut=i > 0
            )
        super().__init__(layers)


class HGNetV2(Backbone):
    """HGNetv2 trunk; ``forward_features`` returns the outputs of stages 2, 3 and 4."""

    def __init__(self, cfg: HGNetV2Config, in_chans: int = 3) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.stem = HGStem(in_chans, cfg.stem_channels[0], cfg.stem_channels[1])
        stages = []
        in_ch = cfg.stem_channels[1]
        for i in range(NUM_STAGES):
            stages.append(
                HGStage(
                    in_ch,
                    cfg.mid_channels[i],
                    cfg.out_channels[i],
                    cfg.blocks[i],
                    cfg.kernel_sizes[i],
                    cfg.layers_per_block[i],
                    cfg.light[i],
                    downsample=i > 0,  # the stem already reaches stride 4
                )
            )
            in_ch = cfg.out_channels[i]
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(cfg.out_channels[1:])
        self.out_strides = STAGE_STRIDES[1:]
        self.head = ClassifierHead(cfg.out_channels[-1], cfg.num_classes, cfg.drop_rate)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        levels = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i > 0:
                levels.append(x)
        return levels


def build(cfg: HGNetV2Config) -> HGNetV2:
    cfg.validate()
    return HGNetV2(cfg)


PRESETS: dict[str, HGNetV2Config] = {
    # rtdetr-l.yaml backbone: HGStem[32,48]; HGBlock x6 [48,128,k3]; DWConv; HGBlock x6
    # [96,512,k3]; DWConv; 3x HGBlock x6 [192,1024,k5,light]; DWConv; HGBlock x6 [384,2048,k5,light].
    "hgnetv2_l": HGNetV2Config(),
}

FAMILIES = [
    Family(
        name="hgnetv2",
        config_cls=HGNetV2Config,
        build=build,
        presets=PRESETS,
        native_imgsz=640,
        description="HGNetv2 (PP-HGNetV2-B4): RT-DETR-l's conv backbone (Ultralytics rtdetr-l.yaml layers 0-9)",
        notes=(
            "Levels = stage 2/3/4 outputs at strides 8/16/32. The classifier (avg pool -> linear) is ours: "
            "Ultralytics' rtdetr-l has none and PaddleClas/timm add a 1x1 conv to 2048 before the linear. "
            "Trunk params (13,553,376 for hgnetv2_l) equal timm hgnetv2_b4 without head. "
            "Deploy form folds every BN into its conv."
        ),
        has_deploy_form=True,
    )
]
