"""VOLO: Vision Outlooker (Yuan, Hou, Jiang, Feng, Yan; arXiv 2106.13112).

Official code: sail-sg/volo ``models/volo.py``; also in timm as ``volo_d1_224 … volo_d5_224``.
The presets ``volo_d1`` … ``volo_d5`` reproduce the published 224-px models: the same
layer table (REFERENCE.md section 6), parameter counts identical to timm/official, and
MACs 0.1-0.3% below timm's fvcore figures (fvcore also counts LayerNorm/BatchNorm
element-wise work, which this project's MAC convention leaves out).

Layout (strides are w.r.t. the input):

    stem      7x7/2 conv-BN-ReLU, two 3x3 conv-BN-ReLU (stem_hidden_dim ch), then a
              (patch_size/2) x (patch_size/2) patchify conv -> embed_dims[0] at /patch_size
    stage 0   Outlookers: outlook attention (local window attention whose weights are
              predicted by a linear layer from the centre token, unfold -> weighted sum ->
              fold) + MLP                                                  -> P3 (/8)
    down      2x2/2 conv to embed_dims[1]; learned position embedding added
    stage 1.. Transformer blocks (global multi-head self-attention + MLP)   -> P4 (/16)
    post      ``post_layers`` class-attention blocks (CaiT): a class token attends to all
              tokens; LayerNorm; ``head`` on the class token, plus the token-labeling
              ``aux_head`` on every patch token.

Feature levels. VOLO has tokens only at /8 and /16. The three levels are
P3 = outlooker-stage output (/8), P4 = last transformer-stage output (/16) and
P5 = a parameter-free 2x2 average pool of P4 (/32, ceil mode). A pool rather than a
learnable stride-2 layer because (1) the backbone then stays exactly the published
network, so parameters equal timm's and ImageNet weights load with nothing left
untrained; (2) a detector neck (RT-DETR's hybrid encoder) already starts every level
with its own learnable projection, so a learnable downsample here would only duplicate
it; (3) the coarsest level of a plain-ViT pyramid is commonly built by stride-2 pooling
(ViTDet). The VOLO seed is classification-only and defines no feature levels. The pool
is counted: it runs inside ``forward_features`` and costs 0 MACs by the counter's
convention (pooling is not a multiply-accumulate).

Logits. ``forward(x)`` runs the class-attention head on the *stride-16* tokens (P4), not
on P5: ``forward(x) == forward_head(forward_features(x)[1])``. As in the reference at
inference, ``logits = head(cls_token) + 0.5 * max_over_tokens(aux_head(patch_tokens))``;
the training-time token-labeling outputs (separate dense logits, MixToken) are available
from ``head_outputs`` for a trainer that wants them.

Input sizes. The stem (stride ``patch_size``) and the 2x2 downsample need H and W
divisible by ``2 * patch_size`` (16 for the presets). Other sizes are zero-padded at the
bottom/right to the next multiple Hp = 16 * ceil(H / 16); the levels then have Hp/8,
Hp/16 and ceil(Hp/32) rows (H/8, H/16, ceil(H/32) when H is a multiple of 16). The
position embedding (a ``img_size / (2 * patch_size)`` square grid) is resized bicubically
when the token grid differs, as the official code does when it loads weights at a new
resolution.

Deploy form: only the stem's conv-BN pairs fold (``ConvNormAct.fuse``); everything else
uses LayerNorm, which does not fold into a preceding layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, Family, Published
from .layers import ConvNormAct


@dataclass(frozen=True)
class VOLOConfig:
    """Every VOLO knob. Defaults = ``volo_d1``.

    Per-stage tuples: index 0 is the outlooker stage, the rest are transformer stages.
    """

    layers: tuple[int, ...] = (4, 4, 8, 2)
    embed_dims: tuple[int, ...] = (192, 384, 384, 384)  # transformer entries must agree
    num_heads: tuple[int, ...] = (6, 12, 12, 12)
    mlp_ratios: tuple[float, ...] = (3.0, 3.0, 3.0, 3.0)
    outlook_kernel: int = 3  # local window (k x k) of outlook attention
    outlook_stride: int = 2  # window stride: attention weights are predicted on a /stride grid
    outlook_padding: int = 1  # must be (kernel - 1) / 2
    stem_hidden_dim: int = 64  # 128 for D5
    patch_size: int = 8  # stride of the stem + patchify conv (P3 stride)
    post_layers: int = 2  # class-attention blocks; 0 = mean-pool the tokens instead
    return_dense: bool = True  # token-labeling aux head on every patch token
    qkv_bias: bool = False
    img_size: int = 224  # native size: sets the learned position-embedding grid
    num_classes: int = 1000
    drop_rate: float = 0.0

    def validate(self) -> None:
        n = len(self.layers)
        per_stage = {"embed_dims": self.embed_dims, "num_heads": self.num_heads, "mlp_ratios": self.mlp_ratios}
        for name, values in per_stage.items():
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} entries but layers has {n}; give one per stage")
        if n < 2:
            raise ValueError("VOLO needs an outlooker stage and at least one transformer stage (len(layers) >= 2)")
        if any(d != self.embed_dims[1] for d in self.embed_dims[1:]):
            raise ValueError(f"transformer stages share one width, got embed_dims[1:]={self.embed_dims[1:]}")
        if any(v < 0 for v in self.layers):
            raise ValueError(f"layers must be >= 0, got {self.layers}")
        for i, (dim, heads) in enumerate(zip(self.embed_dims, self.num_heads)):
            if dim < 1 or heads < 1 or dim % heads:
                raise ValueError(f"stage {i}: embed dim {dim} is not divisible by {heads} heads")
        if any(r <= 0 for r in self.mlp_ratios):
            raise ValueError(f"mlp_ratios must be > 0, got {self.mlp_ratios}")
        if self.outlook_kernel != 2 * self.outlook_padding + 1:
            raise ValueError(
                f"outlook_padding must be (outlook_kernel - 1) / 2 so the unfolded windows line up with the "
                f"attention grid, got kernel {self.outlook_kernel}, padding {self.outlook_padding}"
            )
        if not 1 <= self.outlook_stride <= self.outlook_kernel:
            raise ValueError(f"outlook_stride must be in [1, outlook_kernel], got {self.outlook_stride}")
        if self.patch_size < 2 or self.patch_size % 2:
            raise ValueError(f"patch_size must be even and >= 2 (the stem has stride 2), got {self.patch_size}")
        if self.img_size % (2 * self.patch_size):
            raise ValueError(f"img_size {self.img_size} must be divisible by 2 * patch_size = {2 * self.patch_size}")
        if self.stem_hidden_dim < 1 or self.post_layers < 0 or self.num_classes < 0:
            raise ValueError("stem_hidden_dim must be >= 1, post_layers and num_classes >= 0")


# ---------------------------------------------------------------------------------------
# Blocks. Token tensors are channels-last: [B, H, W, C] in the outlooker stage (it needs
# the 2-D layout), [B, N, C] afterwards.


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, hidden width ``int(dim * ratio)`` as the reference."""

    def __init__(self, dim: int, ratio: float, drop: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class OutlookAttention(nn.Module):
    """Outlook attention: each k x k window is aggregated with weights predicted from its
    centre token (no query-key product).

    The weights come from a linear layer applied on a grid pooled by ``stride``; each grid
    point predicts a (k*k) x (k*k) matrix per head that mixes the k*k values of its window.
    The mixed windows are folded back (overlaps summed) and projected.
    """

    def __init__(self, dim: int, heads: int, kernel: int, padding: int, stride: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.kernel, self.padding, self.stride = heads, kernel, padding, stride
        self.scale = (dim // heads) ** -0.5
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn = nn.Linear(dim, kernel**4 * heads)  # one (k*k) x (k*k) matrix per head
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        kk = self.kernel * self.kernel
        v = self.v(x).permute(0, 3, 1, 2)  # [B, C, H, W]
        windows = F.unfold(v, self.kernel, padding=self.padding, stride=self.stride)  # [B, C*kk, L]
        n_win = windows.shape[-1]
        # unfold lays channels out as (c, window position): split c into heads x head_dim.
        windows = windows.reshape(b, self.heads, c // self.heads, kk, n_win).permute(0, 1, 4, 3, 2)

        grid = F.avg_pool2d(x.permute(0, 3, 1, 2), self.stride, self.stride, ceil_mode=True)
        weights = self.attn(grid.permute(0, 2, 3, 1)).reshape(b, n_win, self.heads, kk, kk)
        weights = (weights.permute(0, 2, 1, 3, 4) * self.scale).softmax(dim=-1)  # [B, heads, L, kk, kk]

        mixed = weights @ windows  # the aggregation is a real matmul, so it is counted
        mixed = mixed.permute(0, 1, 4, 3, 2).reshape(b, c * kk, n_win)
        out = F.fold(mixed, (h, w), self.kernel, padding=self.padding, stride=self.stride)  # [B, C, H, W]
        return self.proj(out.permute(0, 2, 3, 1))


class Outlooker(nn.Module):
    """Pre-norm residual block: outlook attention, then MLP (on [B, H, W, C])."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, cfg: VOLOConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = OutlookAttention(
            dim, heads, cfg.outlook_kernel, cfg.outlook_padding, cfg.outlook_stride, cfg.qkv_bias
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SelfAttention(nn.Module):
    """Global multi-head self-attention over [B, N, C] tokens."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5, as the reference
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ClassAttention(nn.Module):
    """CaiT class attention: only the class token (token 0) queries; all tokens are keys."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        k, v = self.kv(x).reshape(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q = self.q(x[:, :1]).reshape(b, 1, self.heads, c // self.heads).transpose(1, 2)
        cls = F.scaled_dot_product_attention(q, k, v)  # [B, heads, 1, head_dim]
        return self.drop(self.proj(cls.transpose(1, 2).reshape(b, 1, c)))


class ClassBlock(nn.Module):
    """Updates only the class token; the patch tokens pass through unchanged."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool, drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttention(dim, heads, qkv_bias, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.attn(self.norm1(x))
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)


# ---------------------------------------------------------------------------------------
# The network.


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom/right so H and W are multiples of ``multiple`` (no-op if they are)."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


def _resize_pos_embed(pos: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a [1, h, w, C] position embedding to ``grid_hw`` (official VOLO's rule)."""
    if tuple(pos.shape[1:3]) == grid_hw:
        return pos
    resized = F.interpolate(pos.permute(0, 3, 1, 2), size=grid_hw, mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1)


def _init_weights(module: nn.Module) -> None:
    """The reference init: truncated normal (std 0.02) linears with zero bias."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VOLO(Backbone):
    """VOLO backbone + class-attention classifier; see the module docstring."""

    def __init__(self, cfg: VOLOConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d_out, d_tr = cfg.embed_dims[0], cfg.embed_dims[1]
        hid = cfg.stem_hidden_dim
        self.stem = nn.Sequential(
            ConvNormAct(3, hid, 7, stride=2, act=nn.ReLU),
            ConvNormAct(hid, hid, 3, act=nn.ReLU),
            ConvNormAct(hid, hid, 3, act=nn.ReLU),
        )
        patch_kernel = cfg.patch_size // 2  # the stem already halved the resolution
        self.patch_proj = nn.Conv2d(hid, d_out, patch_kernel, stride=patch_kernel)
        self.outlookers = nn.Sequential(
            *(Outlooker(d_out, cfg.num_heads[0], cfg.mlp_ratios[0], cfg) for _ in range(cfg.layers[0]))
        )
        self.downsample = nn.Conv2d(d_out, d_tr, 2, stride=2)
        grid = cfg.img_size // (2 * cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, d_tr))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        self.transformers = nn.Sequential(
            *(
                nn.Sequential(*(TransformerBlock(d_tr, heads, ratio, cfg.qkv_bias) for _ in range(depth)))
                for depth, heads, ratio in zip(cfg.layers[1:], cfg.num_heads[1:], cfg.mlp_ratios[1:])
            )
        )
        has_cls = cfg.post_layers > 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_tr)) if has_cls else None
        self.post_blocks = nn.Sequential(
            *(
                ClassBlock(d_tr, cfg.num_heads[-1], cfg.mlp_ratios[-1], cfg.qkv_bias, cfg.drop_rate)
                for _ in range(cfg.post_layers)
            )
        )
        self.norm = nn.LayerNorm(d_tr)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head: nn.Module = nn.Linear(d_tr, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        use_aux = cfg.return_dense and cfg.num_classes > 0
        self.aux_head = nn.Linear(d_tr, cfg.num_classes) if use_aux else None
        self.p5_pool = nn.AvgPool2d(2, stride=2, ceil_mode=True)  # parameter-free /32 level

        self.out_channels = (d_out, d_tr, d_tr)
        self.out_strides = (cfg.patch_size, 2 * cfg.patch_size, 4 * cfg.patch_size)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    # -- backbone ---------------------------------------------------------------------

    def _stride8_stride16(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channels-last token maps after the outlooker stage (/8) and the transformers (/16)."""
        x = _pad_to_multiple(x, 2 * self.cfg.patch_size)
        x = self.patch_proj(self.stem(x)).permute(0, 2, 3, 1)  # [B, H/8, W/8, C0]
        p3 = self.outlookers(x)
        x = self.downsample(p3.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # [B, H/16, W/16, C1]
        b, h, w, c = x.shape
        x = self.pos_drop(x + _resize_pos_embed(self.pos_embed, (h, w)))
        p4 = self.transformers(x.reshape(b, h * w, c)).reshape(b, h, w, c)
        return p3, p4

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3, p4 = self._stride8_stride16(x)
        p3 = p3.permute(0, 3, 1, 2).contiguous()
        p4 = p4.permute(0, 3, 1, 2).contiguous()
        return [p3, p4, self.p5_pool(p4)]

    # -- classifier -------------------------------------------------------------------

    def head_outputs(self, p4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(class logits [B, K], per-token aux logits [B, N, K] or None) from the /16 map.

        The pair a token-labeling trainer needs; ``forward_head`` combines them.
        """
        tokens = p4.flatten(2).transpose(1, 2)  # [B, N, C]
        n_prefix = 0
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            n_prefix = 1
        tokens = self.norm(self.post_blocks(tokens))
        pooled = tokens[:, 0] if n_prefix else tokens.mean(dim=1)
        logits = self.head(self.head_drop(pooled))
        aux = self.aux_head(tokens[:, n_prefix:]) if self.aux_head is not None else None
        return logits, aux

    def forward_head(self, p4: torch.Tensor) -> torch.Tensor:
        """Logits from the **stride-16** level (``forward_features(x)[1]``), not from P5.

        Reference inference rule: class-token logits + 0.5 x the per-class max over the
        token-labeling logits of all patch tokens.
        """
        logits, aux = self.head_outputs(p4)
        if aux is not None:
            logits = logits + 0.5 * aux.amax(dim=1)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, p4 = self._stride8_stride16(x)
        return self.forward_head(p4.permute(0, 3, 1, 2))


def build(cfg: VOLOConfig) -> VOLO:
    cfg.validate()
    return VOLO(cfg)


def _preset(layers, dims, heads, mlp: float, stem_hidden: int = 64) -> VOLOConfig:
    return VOLOConfig(
        layers=layers, embed_dims=dims, num_heads=heads, mlp_ratios=(mlp,) * 4, stem_hidden_dim=stem_hidden
    )


# REFERENCE.md section 6 (sail-sg/volo README; timm volo_dX_224).
PRESETS: dict[str, VOLOConfig] = {
    "volo_d1": _preset((4, 4, 8, 2), (192, 384, 384, 384), (6, 12, 12, 12), 3.0),
    "volo_d2": _preset((6, 4, 10, 4), (256, 512, 512, 512), (8, 16, 16, 16), 3.0),
    "volo_d3": _preset((8, 8, 16, 4), (256, 512, 512, 512), (8, 16, 16, 16), 3.0),
    "volo_d4": _preset((8, 8, 16, 4), (384, 768, 768, 768), (12, 16, 16, 16), 3.0),
    "volo_d5": _preset((12, 12, 20, 4), (384, 768, 768, 768), (12, 16, 16, 16), 4.0, stem_hidden=128),
}

# Published ImageNet-1k top-1 at 224 px (sail-sg/volo README; trained with token labeling).
PUBLISHED = {
    name: Published(top1, 224, "VOLO paper (TPAMI 2022), sail-sg/volo README")
    for name, top1 in zip(PRESETS, (84.2, 85.2, 85.4, 85.7, 86.1))
}

FAMILIES = [
    Family(
        name="volo",
        config_cls=VOLOConfig,
        build=build,
        presets=PRESETS,
        native_imgsz=224,
        description="VOLO D1-D5: outlook-attention stage (/8) + transformer stages (/16) + class attention",
        notes=(
            "Levels: P3 = outlooker output (/8), P4 = last transformer output (/16), "
            "P5 = parameter-free 2x2 avg-pool of P4 (/32, 0 MACs). Logits come from P4 "
            "(forward_head takes forward_features(x)[1]): class-token logits + 0.5 x max over "
            "tokens of the token-labeling aux logits, as the reference at inference. Inputs are "
            "zero-padded to a multiple of 2*patch_size (16); the position embedding is resized "
            "bicubically for non-native grids. Only the stem's conv-BN folds in deploy form."
        ),
        has_deploy_form=True,
        published=PUBLISHED,
    )
]

__all__ = ["VOLOConfig", "VOLO", "build", "PRESETS", "FAMILIES"]
