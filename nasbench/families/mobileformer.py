"""Mobile-Former (Chen et al., "Mobile-Former: Bridging MobileNet and Transformer", CVPR 2022,
arXiv 2108.05895; official code: github.com/AAboys/MobileFormer, ``mobile_former.py``).

Two paths run side by side through every block:
- **Mobile**: a MobileNet-style conv stack on the feature map. Its activations are
  dynamic ReLUs, ``max(a1*x, a2*x)`` with per-sample, per-channel slopes predicted by a
  small MLP from the first global token.
- **Former**: a handful of global tokens (3-6, dim 128-192) refined by one MHSA + FFN
  layer per block (post-LN; keys = values = the tokens themselves, no projection).
Two cross-attention bridges (2 heads) join them. Neither projects the feature map:
- Mobile->Former, before the conv stack: tokens query the input feature map (keys =
  values = raw pixels); the result is gated per channel by the tokens, projected to token
  dim, added and layer-normed.
- Former->Mobile, after it: every pixel queries the tokens (keys and values projected
  from tokens to the channel count) and the result is added to the feature map.
A final Mobile->Former bridge refreshes the tokens; the classifier concatenates the
pooled 1x1-expanded feature map with token 0.

Block table, as in the official code: ``(type, e1, c, n, s, e2)`` where ``dna3``
("DnaBlock3": dw 3x3 with x e1 channel multiplier -> pw -> dw x e2 -> pw, inner skip)
serves the stride-2 blocks and ``dna`` ("DnaBlock": pw x e1 -> dw -> pw) the others;
``e2 == 0`` (the first block) makes a plain conv block (dw x e1 -> ReLU6 -> pw) with no
bridges. The presets reproduce the official 26M..508M models exactly: parameter
counts 3,232,788 / 3,469,092 / 4,585,252 / 7,595,828 / 9,425,920 / 11,422,648 /
13,976,976 (paper: 3.2 / 3.5 / 4.6 / 7.6 / 9.4 / 11.4 / 14.0 M), and the same
multiply-accumulates as the official model under torch's FlopCounterMode.

MACs convention: the names (26M ... 508M) are the paper's MAdds at 224x224, which
include the two multiplies per activation of every dynamic ReLU. ``DynamicReLU`` declares
them (``elementwise_macs``: the one element-wise exception of ``count_cost``), so the
counts are 25.19M / 50.93M / 94.45M / 149.85M / 212.90M / 292.49M / 506.35M, i.e. 3.1 /
2.1 / 1.6 / 0.8 / 0.5 / 0.5 / 0.3% under the names (without them: 1.9-9.4% under, e.g.
26M 23.55M, 294M 286.73M, which is also what FlopCounterMode gives on the official
model). The 0.8M (26M) and 1.1M (52M) still missing are not the official code's other
element-wise ops (its residual adds and bridge gates come to ~0.2M): they lie in how the
paper counted, which it does not publish. Bridge attention, Former attention and the
dynamic-ReLU MLPs are counted.

Feature levels for detectors: the Mobile-path outputs of the last block at strides 8, 16
and 32 (e.g. 294M: 48, 128, 192 channels). The classifier's 1x1 expansion is not part of
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.families.base import Backbone, Family, Published
from nasbench.families.layers import ConvNormAct, fold_bn

BLOCK_TYPES = ("dna", "dna3")
DW_KERNEL = 3  # every depthwise conv of the official models is 3x3


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MobileFormerConfig:
    """Every architectural knob. Per-block tuples have one entry per block.

    Defaults are Mobile-Former-294M.
    """

    stem_channels: int = 16
    block_types: tuple[str, ...] = ("dna3", "dna3", "dna", "dna3", "dna", "dna3", "dna", "dna", "dna",
                                    "dna3", "dna", "dna")
    block_channels: tuple[int, ...] = (16, 24, 24, 48, 48, 96, 96, 128, 128, 192, 192, 192)
    block_e1: tuple[int, ...] = (2, 6, 4, 6, 4, 6, 4, 6, 6, 6, 6, 6)
    # Read by dna3 blocks only (their second depthwise multiplier); 0 in any block type
    # selects the bridge-less conv block, as in the official code.
    block_e2: tuple[int, ...] = (0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4)
    block_strides: tuple[int, ...] = (1, 2, 1, 2, 1, 2, 1, 1, 1, 2, 1, 1)
    token_count: int = 6
    token_dim: int = 192
    bridge_heads: int = 2  # Mobile<->Former cross-attention heads
    former_heads: int = 4  # token self-attention heads (the official GlobalBlock default)
    former_ffn_ratio: int = 2
    dyrelu_reduction: int = 4  # dynamic-ReLU MLP hidden = token_dim // reduction
    head_expansion: int = 6  # classifier 1x1 conv: last channels -> expansion x channels
    head_hidden: int = 1920  # width of the hidden linear layer before the classifier
    group_num: int = 1  # groups of every pointwise conv (4 in 26M, with channel shuffles)
    num_classes: int = 1000
    drop_rate: float = 0.3

    def validate(self) -> None:
        n = len(self.block_types)
        for name in ("block_channels", "block_e1", "block_e2", "block_strides"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values but block_types has {n}")
        if n == 0:
            raise ValueError("at least one block is needed")
        bad_types = sorted(set(self.block_types) - set(BLOCK_TYPES))
        if bad_types:
            raise ValueError(f"unknown block type(s) {bad_types}; use {list(BLOCK_TYPES)}")
        if any(s not in (1, 2) for s in self.block_strides):
            raise ValueError(f"block_strides must be 1 or 2, got {self.block_strides}")
        for name in ("stem_channels", "token_count", "token_dim", "bridge_heads", "former_heads",
                     "former_ffn_ratio", "dyrelu_reduction", "head_expansion", "head_hidden", "group_num"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if any(v <= 0 for v in self.block_channels + self.block_e1) or any(v < 0 for v in self.block_e2):
            raise ValueError("block_channels and block_e1 must be positive and block_e2 >= 0")
        if self.token_dim % self.former_heads:
            raise ValueError(f"token_dim {self.token_dim} is not divisible by former_heads={self.former_heads}")
        if self.token_dim < self.dyrelu_reduction:
            raise ValueError(f"token_dim {self.token_dim} < dyrelu_reduction {self.dyrelu_reduction}")
        if len(set(self.level_strides)) < 3:
            raise ValueError(f"need three stride levels, the strides give only {sorted(set(self.level_strides))}")
        g = self.group_num
        for i, (kind, c_in, c_out, e1, e2) in enumerate(self.blocks()):
            if e2 and (c_in % self.bridge_heads or c_out % self.bridge_heads):
                raise ValueError(
                    f"block {i}: channels {c_in}->{c_out} not divisible by bridge_heads={self.bridge_heads}"
                )
            widths = _grouped_conv_widths(kind, c_in, c_out, e1, e2)
            if any(w % g for w in widths):
                raise ValueError(f"block {i}: grouped-conv widths {widths} not divisible by group_num={g}")
        last = self.block_channels[-1]
        if last % self.bridge_heads or last % g:
            raise ValueError(f"last block channels {last} must divide by bridge_heads and group_num")

    def blocks(self) -> list[tuple[str, int, int, int, int]]:
        """(type, in_channels, out_channels, e1, e2) per block."""
        ins = (self.stem_channels,) + self.block_channels[:-1]
        return list(zip(self.block_types, ins, self.block_channels, self.block_e1, self.block_e2))

    @property
    def level_strides(self) -> tuple[int, ...]:
        """Output stride (w.r.t. the input) of every block; the stem halves first."""
        strides, s = [], 2
        for step in self.block_strides:
            s *= step
            strides.append(s)
        return tuple(strides)

    def level_blocks(self) -> tuple[int, int, int]:
        """Indices of the last block at each of the three deepest strides."""
        last_at: dict[int, int] = {}
        for i, s in enumerate(self.level_strides):
            last_at[s] = i
        return tuple(last_at[s] for s in sorted(last_at)[-3:])  # type: ignore[return-value]


def _grouped_conv_widths(kind: str, c_in: int, c_out: int, e1: int, e2: int) -> tuple[int, ...]:
    """In/out widths of a block's pointwise convs, which group_num must divide."""
    if e2 == 0:  # bridge-less conv block: dw (x e1) -> pw
        return (c_in * e1, c_out)
    if kind == "dna":  # pw (x e1) -> dw -> pw
        return (c_in, c_in * e1, c_out)
    return (c_in * e1, c_out, c_out * e2)  # dna3: dw (x e1) -> pw -> dw (x e2) -> pw


# --------------------------------------------------------------------------- pieces
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet shuffle: [B, g*n, H, W] -> interleave the g groups channel by channel."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, C] -> [B, heads, N, C/heads] (contiguous channel groups per head)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``split_heads``."""
    b, heads, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, heads * d)


def pixels_as_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Feature map [B, C, H, W] -> [B, heads, H*W, C/heads]: pixels as attention items."""
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w).transpose(-1, -2)


class DynamicReLU(nn.Module):
    """Dynamic ReLU (type B, k=2, no bias): max(a1*x, a2*x) per channel and sample.

    The slopes come from a token through Linear -> ReLU -> Linear -> hard-sigmoid; the
    sigmoid's [0, 1] output is mapped to a1 in [0, 2] and a2 in [-1, 1], so a fresh
    model starts near an ordinary ReLU (a1 = 1, a2 = 0).
    """

    def __init__(self, channels: int, token_dim: int, reduction: int) -> None:
        super().__init__()
        squeeze = token_dim // reduction
        self.hyper = nn.Sequential(
            nn.Linear(token_dim, squeeze), nn.ReLU(), nn.Linear(squeeze, 2 * channels), nn.Hardsigmoid()
        )

    def forward(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        h = self.hyper(token).reshape(b, 2, c, 1, 1)
        slope1 = 2.0 * h[:, 0]
        slope2 = 2.0 * h[:, 1] - 1.0
        return torch.maximum(x * slope1, x * slope2)

    def elementwise_macs(self, output: torch.Tensor) -> int:
        """Counted by ``count_cost``: the two slope multiplies per activation, as in the
        paper's MAdds (the max is a comparison, not a MAC)."""
        return 2 * output.numel()


class MobileToFormer(nn.Module):
    """Bridge in: tokens cross-attend to the raw feature map, then a token-driven gate.

    Only the token side is projected (query: token_dim -> C; output: C -> token_dim),
    so the cost on the large feature map is just the two attention products.
    """

    def __init__(self, channels: int, token_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.q = nn.Linear(token_dim, channels)
        self.gate = nn.Linear(token_dim, channels)  # per-channel gate in [0, 2]
        self.proj = nn.Linear(channels, token_dim)
        self.norm = nn.LayerNorm(token_dim)  # post-LN

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q(tokens), self.heads)  # [B, h, T, C/h]
        pixels = pixels_as_heads(x, self.heads)  # [B, h, HW, C/h], keys = values
        mixed = merge_heads(F.scaled_dot_product_attention(q, pixels, pixels, scale=self.scale))
        mixed = mixed * (2.0 * F.hardsigmoid(self.gate(tokens)))
        return self.norm(tokens + self.proj(mixed))


class Former(nn.Module):
    """Token self-attention (keys = values = tokens, query projected) + FFN, post-LN."""

    def __init__(self, token_dim: int, heads: int, ffn_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (token_dim // heads) ** -0.5
        self.q = nn.Linear(token_dim, token_dim)
        self.proj = nn.Linear(token_dim, token_dim)
        self.norm1 = nn.LayerNorm(token_dim)
        hidden = token_dim * ffn_ratio
        self.ffn = nn.Sequential(nn.Linear(token_dim, hidden), nn.GELU(), nn.Linear(hidden, token_dim))
        self.norm2 = nn.LayerNorm(token_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q(tokens), self.heads)
        kv = split_heads(tokens, self.heads)
        attn = merge_heads(F.scaled_dot_product_attention(q, kv, kv, scale=self.scale))
        tokens = self.norm1(tokens + self.proj(attn))
        return self.norm2(tokens + self.ffn(tokens))


class FormerToMobile(nn.Module):
    """Bridge out: every pixel cross-attends to the tokens; the result is added."""

    def __init__(self, channels: int, token_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.k = nn.Linear(token_dim, channels)
        self.v = nn.Linear(token_dim, channels)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = pixels_as_heads(x, self.heads)  # [B, h, HW, C/h], the map itself is the query
        k = split_heads(self.k(tokens), self.heads)
        v = split_heads(self.v(tokens), self.heads)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # [B, h, HW, C/h]
        return x + out.transpose(-1, -2).reshape(b, c, h, w)


# --------------------------------------------------------------------------- mobile path
def _bn_conv(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> ConvNormAct:
    """Conv + BN, no activation (the dynamic ReLU, if any, is applied by the caller)."""
    return ConvNormAct(c_in, c_out, kernel, stride, groups=groups, act=None)


class ConvBlock(nn.Module):
    """Bridge-less first block: dw 3x3 (x e1 channels) -> ReLU6 -> grouped pw (+ skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int, e1: int, groups: int) -> None:
        super().__init__()
        self.dw = ConvNormAct(c_in, c_in * e1, DW_KERNEL, stride, groups=c_in, act=nn.ReLU6)
        self.pw = _bn_conv(c_in * e1, c_out, groups=groups)
        self.shuffle = c_in if groups > 1 else 0
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dw(x)
        if self.shuffle:
            y = channel_shuffle(y, self.shuffle)
        y = self.pw(y)
        return (x + y if self.use_skip else y), tokens


class PwDwPw(nn.Module):
    """"dna" mobile sub-block: pw (x e1) -> DyReLU -> dw -> DyReLU -> pw (linear)."""

    def __init__(self, c_in: int, c_out: int, stride: int, e1: int, groups: int, token_dim: int,
                 reduction: int) -> None:
        super().__init__()
        hidden = c_in * e1
        self.groups = groups
        self.pw1 = _bn_conv(c_in, hidden, groups=groups)
        self.act1 = DynamicReLU(hidden, token_dim, reduction)
        self.dw = _bn_conv(hidden, hidden, DW_KERNEL, stride, groups=hidden)
        self.act2 = DynamicReLU(hidden, token_dim, reduction)
        self.pw2 = _bn_conv(hidden, c_out, groups=groups)

    def _shuffle(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups) if self.groups > 1 else x

    def forward(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        y = self.act1(self._shuffle(self.pw1(x)), token)
        y = self.act2(self.dw(y), token)
        return self._shuffle(self.pw2(y))


class DwPwDwPw(nn.Module):
    """"dna3" mobile sub-block: dw (x e1) -> DyReLU -> pw -> [dw (x e2) -> DyReLU -> pw] + skip.

    The first depthwise conv carries the stride and widens by a channel multiplier, so
    the expensive pointwise conv runs on the downsampled map.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, e1: int, e2: int, groups: int,
                 token_dim: int, reduction: int) -> None:
        super().__init__()
        self.shuffle_in, self.shuffle_out = (c_in, c_out) if groups > 1 else (0, 0)
        self.dw1 = _bn_conv(c_in, c_in * e1, DW_KERNEL, stride, groups=c_in)
        self.act1 = DynamicReLU(c_in * e1, token_dim, reduction)
        self.pw1 = _bn_conv(c_in * e1, c_out, groups=groups)
        self.dw2 = _bn_conv(c_out, c_out * e2, DW_KERNEL, groups=c_out)
        self.act2 = DynamicReLU(c_out * e2, token_dim, reduction)
        self.pw2 = _bn_conv(c_out * e2, c_out, groups=groups)

    def forward(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        y = self.dw1(x)
        if self.shuffle_in:  # regroup the depthwise multiplier's copies for the grouped pw
            y = channel_shuffle(y, self.shuffle_in)
        y = self.pw1(self.act1(y, token))
        z = self.dw2(y)
        if self.shuffle_out:
            z = channel_shuffle(z, self.shuffle_out)
        return y + self.pw2(self.act2(z, token))


class MobileFormerBlock(nn.Module):
    """Mobile->Former bridge, Former, Mobile sub-block, Former->Mobile bridge."""

    def __init__(self, kind: str, c_in: int, c_out: int, stride: int, e1: int, e2: int,
                 cfg: MobileFormerConfig) -> None:
        super().__init__()
        d, r, g = cfg.token_dim, cfg.dyrelu_reduction, cfg.group_num
        self.to_former = MobileToFormer(c_in, d, cfg.bridge_heads)
        self.former = Former(d, cfg.former_heads, cfg.former_ffn_ratio)
        self.mobile: nn.Module = (
            DwPwDwPw(c_in, c_out, stride, e1, e2, g, d, r) if kind == "dna3"
            else PwDwPw(c_in, c_out, stride, e1, g, d, r)
        )
        self.to_mobile = FormerToMobile(c_out, d, cfg.bridge_heads)
        self.use_skip = stride == 1 and c_in == c_out
        # The official DnaBlock adds the skip before the Former->Mobile bridge, DnaBlock3
        # after it; kept so the two block types stay what they were.
        self.skip_before_bridge = kind == "dna"

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.former(self.to_former(x, tokens))
        y = self.mobile(x, tokens[:, 0])  # token 0 drives every dynamic ReLU
        if self.use_skip and self.skip_before_bridge:
            y = y + x
        y = self.to_mobile(y, tokens)
        if self.use_skip and not self.skip_before_bridge:
            y = y + x
        return y, tokens


# --------------------------------------------------------------------------- head + model
class MobileFormerHead(nn.Module):
    """Final Mobile->Former bridge; 1x1 expand + ReLU6 + pool + h-swish; concat token 0;
    Linear + BN + h-swish; dropout; classifier."""

    def __init__(self, channels: int, cfg: MobileFormerConfig) -> None:
        super().__init__()
        wide = channels * cfg.head_expansion
        self.to_former = MobileToFormer(channels, cfg.token_dim, cfg.bridge_heads)
        self.groups = cfg.group_num
        self.expand = ConvNormAct(channels, wide, 1, groups=cfg.group_num, act=nn.ReLU6)
        self.fc = nn.Linear(wide + cfg.token_dim, cfg.head_hidden)
        self.fc_bn: nn.Module = nn.BatchNorm1d(cfg.head_hidden)
        self.act = nn.Hardswish()
        self.drop = nn.Dropout(cfg.drop_rate)
        self.classifier: nn.Module = (
            nn.Linear(cfg.head_hidden, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        )

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.to_former(x, tokens)
        if self.groups > 1:
            x = channel_shuffle(x, self.groups)
        pooled = self.act(self.expand(x).mean((2, 3)))
        y = self.act(self.fc_bn(self.fc(torch.cat((pooled, tokens[:, 0]), dim=1))))
        return self.classifier(self.drop(y))

    def fuse(self) -> None:
        """Fold both BNs (the 1x1 conv's and the hidden linear's)."""
        self.expand.fuse()
        if isinstance(self.fc_bn, nn.BatchNorm1d):
            w, b = fold_bn(self.fc.weight, self.fc.bias, self.fc_bn)
            self.fc.weight.data.copy_(w.detach())
            self.fc.bias.data.copy_(b.detach())
            self.fc_bn = nn.Identity()


class MobileFormer(Backbone):
    """Mobile-Former: parallel MobileNet path and a few global tokens, joined by bridges."""

    def __init__(self, cfg: MobileFormerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        # Learned initial tokens, shared by all images (the official nn.Embedding).
        self.tokens = nn.Parameter(torch.randn(cfg.token_count, cfg.token_dim))
        self.stem = ConvNormAct(3, cfg.stem_channels, 3, stride=2, act=nn.ReLU6)
        blocks: list[nn.Module] = []
        for (kind, c_in, c_out, e1, e2), stride in zip(cfg.blocks(), cfg.block_strides):
            if e2 == 0:
                blocks.append(ConvBlock(c_in, c_out, stride, e1, cfg.group_num))
            else:
                blocks.append(MobileFormerBlock(kind, c_in, c_out, stride, e1, e2, cfg))
        self.blocks = nn.ModuleList(blocks)
        self.level_ids = cfg.level_blocks()
        self.out_channels = tuple(cfg.block_channels[i] for i in self.level_ids)
        self.out_strides = tuple(cfg.level_strides[i] for i in self.level_ids)
        self.head = MobileFormerHead(cfg.block_channels[-1], cfg)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def _run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Feature levels and the tokens after the last block."""
        tokens = self.tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
        x = self.stem(x)
        levels = []
        for i, block in enumerate(self.blocks):
            x, tokens = block(x, tokens)
            if i in self.level_ids:
                levels.append(x)
        return levels, tokens

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._run(x)[0]

    def forward_head(self, last_level: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The head also reads the global tokens (token 0 is concatenated to the pooled map)."""
        return self.head(last_level, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, tokens = self._run(x)
        return self.forward_head(levels[-1], tokens)


def build(cfg: MobileFormerConfig) -> MobileFormer:
    return MobileFormer(cfg)


# --------------------------------------------------------------------------- presets
BlockRow = tuple[str, int, int, int, int, int]  # (type, e1, c, n, s, e2), the official format


def _preset(rows: list[BlockRow], stem: int, tokens: int, token_dim: int, head_hidden: int,
            drop_rate: float, group_num: int = 1) -> MobileFormerConfig:
    """Expand an official block table (n repeats; repeats have stride 1) into per-block knobs."""
    blocks = [(t, e1, c, s if i == 0 else 1, e2) for t, e1, c, n, s, e2 in rows for i in range(n)]
    types, e1s, chans, strides, e2s = zip(*blocks)
    return MobileFormerConfig(
        stem_channels=stem, block_types=types, block_channels=chans, block_e1=e1s, block_e2=e2s,
        block_strides=strides, token_count=tokens, token_dim=token_dim, head_hidden=head_hidden,
        group_num=group_num, drop_rate=drop_rate,
    )


# Block tables of mobile_former.py (AAboys/MobileFormer); dropout from its README commands.
_ROWS_508M: list[BlockRow] = [
    ("dna3", 2, 24, 1, 1, 0), ("dna3", 6, 40, 1, 2, 4), ("dna", 3, 40, 1, 1, 3),
    ("dna3", 6, 72, 1, 2, 4), ("dna", 3, 72, 1, 1, 3), ("dna3", 6, 128, 1, 2, 4),
    ("dna", 4, 128, 1, 1, 4), ("dna", 6, 176, 1, 1, 4), ("dna", 6, 176, 1, 1, 4),
    ("dna3", 6, 240, 1, 2, 4), ("dna", 6, 240, 1, 1, 4), ("dna", 6, 240, 1, 1, 4),
]
_ROWS_294M: list[BlockRow] = [
    ("dna3", 2, 16, 1, 1, 0), ("dna3", 6, 24, 1, 2, 4), ("dna", 4, 24, 1, 1, 4),
    ("dna3", 6, 48, 1, 2, 4), ("dna", 4, 48, 1, 1, 4), ("dna3", 6, 96, 1, 2, 4),
    ("dna", 4, 96, 1, 1, 4), ("dna", 6, 128, 1, 1, 4), ("dna", 6, 128, 1, 1, 4),
    ("dna3", 6, 192, 1, 2, 4), ("dna", 6, 192, 1, 1, 4), ("dna", 6, 192, 1, 1, 4),
]
_ROWS_214M: list[BlockRow] = [
    ("dna3", 2, 12, 1, 1, 0), ("dna3", 6, 20, 1, 2, 4), ("dna", 3, 20, 1, 1, 4),
    ("dna3", 6, 40, 1, 2, 4), ("dna", 4, 40, 1, 1, 4), ("dna3", 6, 80, 1, 2, 4),
    ("dna", 4, 80, 1, 1, 4), ("dna", 6, 112, 1, 1, 4), ("dna", 6, 112, 1, 1, 4),
    ("dna3", 6, 160, 1, 2, 4), ("dna", 6, 160, 1, 1, 4), ("dna", 6, 160, 1, 1, 4),
]
_ROWS_151M: list[BlockRow] = [
    ("dna3", 2, 12, 1, 1, 0), ("dna3", 6, 16, 1, 2, 4), ("dna", 3, 16, 1, 1, 3),
    ("dna3", 6, 32, 1, 2, 4), ("dna", 3, 32, 1, 1, 3), ("dna3", 6, 64, 1, 2, 4),
    ("dna", 4, 64, 1, 1, 4), ("dna", 6, 88, 1, 1, 4), ("dna", 6, 88, 1, 1, 4),
    ("dna3", 6, 128, 1, 2, 4), ("dna", 6, 128, 1, 1, 4), ("dna", 6, 128, 1, 1, 4),
]
_ROWS_96M: list[BlockRow] = [
    ("dna3", 2, 12, 1, 1, 0), ("dna3", 6, 16, 1, 2, 4), ("dna3", 6, 32, 1, 2, 4),
    ("dna", 3, 32, 1, 1, 3), ("dna3", 6, 64, 1, 2, 4), ("dna", 4, 64, 1, 1, 4),
    ("dna", 6, 88, 1, 1, 4), ("dna3", 6, 128, 1, 2, 4), ("dna", 6, 128, 1, 1, 4),
]
_ROWS_52M: list[BlockRow] = [  # 26M uses the same table with group_num=4
    ("dna3", 3, 12, 1, 2, 0), ("dna", 3, 12, 1, 1, 3), ("dna3", 6, 24, 1, 2, 4),
    ("dna", 3, 24, 1, 1, 3), ("dna3", 6, 48, 1, 2, 4), ("dna", 4, 48, 1, 1, 4),
    ("dna", 6, 64, 1, 1, 4), ("dna3", 6, 96, 1, 2, 4), ("dna", 6, 96, 1, 1, 4),
]

PRESETS: dict[str, MobileFormerConfig] = {
    "mobileformer_26m": _preset(_ROWS_52M, stem=8, tokens=3, token_dim=128, head_hidden=1024, drop_rate=0.1,
                                group_num=4),
    "mobileformer_52m": _preset(_ROWS_52M, stem=8, tokens=3, token_dim=128, head_hidden=1024, drop_rate=0.2),
    "mobileformer_96m": _preset(_ROWS_96M, stem=12, tokens=4, token_dim=128, head_hidden=1280, drop_rate=0.2),
    "mobileformer_151m": _preset(_ROWS_151M, stem=12, tokens=6, token_dim=192, head_hidden=1280, drop_rate=0.2),
    "mobileformer_214m": _preset(_ROWS_214M, stem=12, tokens=6, token_dim=192, head_hidden=1600, drop_rate=0.2),
    "mobileformer_294m": _preset(_ROWS_294M, stem=16, tokens=6, token_dim=192, head_hidden=1920, drop_rate=0.3),
    "mobileformer_508m": _preset(_ROWS_508M, stem=24, tokens=6, token_dim=192, head_hidden=1920, drop_rate=0.3),
}

# Published ImageNet-1k top-1 at 224 px (Mobile-Former paper, CVPR 2022; AAboys/MobileFormer README).
PUBLISHED = {
    name: Published(top1, 224, "Mobile-Former paper (CVPR 2022), AAboys/MobileFormer README")
    for name, top1 in zip(PRESETS, (64.0, 68.7, 72.8, 75.2, 76.7, 77.9, 79.3))
}

FAMILIES = [
    Family(
        name="mobileformer",
        config_cls=MobileFormerConfig,
        build=build,
        presets=PRESETS,
        native_imgsz=224,
        description="Mobile-Former (CVPR 2022): MobileNet path + few global tokens, joined by cross-attention bridges",
        notes=(
            "Names are the paper's MAdds at 224, which count the 2 multiplies per dynamic-ReLU "
            "activation; macs counts them too (26M: 25.19M, 294M: 292.49M, all 0.3-3.1% under the names). "
            "Feature levels: Mobile-path outputs at strides 8/16/32. Deploy form folds every BN."
        ),
        has_deploy_form=True,
        published=PUBLISHED,
    )
]
