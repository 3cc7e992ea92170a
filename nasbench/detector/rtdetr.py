"""RT-DETR: the rtdetr-l neck and decoder over any backbone's three feature levels.

Paper: "DETRs Beat YOLOs on Real-time Object Detection", arXiv 2304.08069; official code
lyuwenyu/RT-DETR. The layer list reproduced here is Ultralytics'
``ultralytics/cfg/models/rt-detr/rtdetr-l.yaml`` (head section) with the ``RTDETRDecoder``
defaults of ``ultralytics/nn/modules/head.py``; ``rtdetr_l()`` pairs it with the HGNetv2-L
backbone (``nasbench.families.hgnetv2``) and has exactly Ultralytics' 32,970,476
parameters for 80 classes.

Data flow (C = hidden_dim = 256, levels P3/P4/P5 from the backbone, deepest last):

    P5 -> 1x1 conv+BN -> AIFI (one post-norm transformer encoder layer) -> 1x1 conv = Y5
    up(Y5) ++ 1x1 conv+BN(P4) -> RepC3 -> 1x1 conv = Y4
    up(Y4) ++ 1x1 conv+BN(P3) -> RepC3 = X3                           (FPN, top-down)
    3x3 s2 conv(X3) ++ Y4 -> RepC3 = F4
    3x3 s2 conv(F4) ++ Y5 -> RepC3 = F5                               (PAN, bottom-up)
    decoder(X3, F4, F5) -> 300 boxes (cx, cy, w, h in 0..1) and class logits

The decoder projects each level with a 1x1 conv+BN, scores every position with a small
encoder head, keeps the top-``num_queries`` positions as queries (content = their
feature, reference box = anchor + predicted offset), and refines them through 6 layers
of self-attention -> multi-scale deformable cross-attention (bilinear ``grid_sample``
at 4 points per level and head, placed relative to the reference box) -> FFN; every
layer predicts a box correction and the last one the class logits.

Not implemented: the training-time denoising queries (``get_cdn_group`` in
Ultralytics). Their only parameter, ``denoising_class_embed``, exists so parameter
counts and state layouts match; inference never uses it. Training-mode forwards run the
decoder exactly as Ultralytics does without denoising (detached references between
layers, per-layer outputs via ``forward_all``).

Deploy form: ``fuse_for_deploy`` folds every BN and turns each RepConv (3x3 and 1x1
branches) into a single 3x3 conv.

Checked against Ultralytics 8.4.190 (outside this repo): with its rtdetr-l weights
copied in (its packed attention ``in_proj`` split into q/k/v) and its BN eps (1e-3, set
by Ultralytics' ``initialize_weights``; we keep PyTorch's and the official code's 1e-5),
boxes and class scores agree to 4e-7 as sets of queries (near-tied queries may swap
places in the top-k order).

Cost at 640 (``count_cost``): 54.80 GMACs = 109.6 GFLOPs (2 x MACs). Ultralytics logs
108.3 with thop 0.1.1, which counts BN/LN but misses attention matmuls, grid_sample and
everything inside ``nn.MultiheadAttention``; newer Ultralytics (ultralytics-thop 2.x,
which counts attention) logs 110.2, the extra being mostly BN/LN (4 per element).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.errors import UserError
from nasbench.families.base import Backbone
from nasbench.families.layers import ConvNormAct, fold_bn

NUM_LEVELS = 3  # the head fuses exactly three levels (P3, P4, P5)


@dataclass(frozen=True)
class RTDETRHeadConfig:
    """Knobs of the neck and decoder. Defaults = Ultralytics rtdetr-l."""

    hidden_dim: int = 256  # channels of the neck and width of the decoder
    aifi_ffn_dim: int = 1024
    aifi_heads: int = 8
    repc3_convs: int = 3  # RepConvs per RepC3 block
    repc3_expansion: float = 1.0  # RepC3 hidden width = expansion * hidden_dim
    num_queries: int = 300
    decoder_layers: int = 6
    decoder_heads: int = 8
    decoder_points: int = 4  # sampling points per level and head
    decoder_ffn_dim: int = 1024
    num_classes: int = 80

    def validate(self) -> None:
        if self.hidden_dim % 4:
            raise ValueError(f"hidden_dim must be divisible by 4 (2-D sin-cos embedding), got {self.hidden_dim}")
        for heads, what in ((self.aifi_heads, "aifi_heads"), (self.decoder_heads, "decoder_heads")):
            if heads < 1 or self.hidden_dim % heads:
                raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by {what}={heads}")
        positive = ("aifi_ffn_dim", "repc3_convs", "num_queries", "decoder_layers", "decoder_points",
                    "decoder_ffn_dim", "num_classes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.hidden_dim * self.repc3_expansion) < 1:
            raise ValueError(f"repc3_expansion {self.repc3_expansion} leaves no RepC3 channels")


class Detections(NamedTuple):
    """Inference output: ``boxes`` [B, Q, 4] as (cx, cy, w, h) in 0..1 of the image,
    ``logits`` [B, Q, num_classes] (apply sigmoid for per-class scores)."""

    boxes: torch.Tensor
    logits: torch.Tensor


class DecoderOutputs(NamedTuple):
    """Everything a DETR loss needs: per-layer boxes/logits [L, B, Q, .] and the
    encoder's top-k proposals [B, Q, .]."""

    boxes: torch.Tensor
    logits: torch.Tensor
    enc_boxes: torch.Tensor
    enc_logits: torch.Tensor


# ------------------------------------------------------------------------------------
# Neck blocks


class RepConv(nn.Module):
    """SiLU(BN(3x3 conv) + BN(1x1 conv)); ``fuse()`` makes it SiLU(one biased 3x3 conv).

    Ultralytics' RepConv with ``bn=False``: no identity branch.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3x3: nn.Module | None = ConvNormAct(channels, channels, 3, act=None)
        self.conv1x1: nn.Module | None = ConvNormAct(channels, channels, 1, act=None)
        self.fused: nn.Conv2d | None = None
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        assert self.conv3x3 is not None and self.conv1x1 is not None
        return self.act(self.conv3x3(x) + self.conv1x1(x))

    def fuse(self) -> None:
        if self.fused is not None:
            return
        assert self.conv3x3 is not None and self.conv1x1 is not None
        w3, b3 = fold_bn(self.conv3x3.conv.weight, None, self.conv3x3.bn)
        w1, b1 = fold_bn(self.conv1x1.conv.weight, None, self.conv1x1.bn)
        # A 1x1 kernel is a 3x3 kernel that is zero except at the centre.
        weight = w3 + F.pad(w1, [1, 1, 1, 1])
        fused = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, bias=True).to(weight.device, weight.dtype)
        fused.weight.data.copy_(weight.detach())
        fused.bias.data.copy_((b3 + b1).detach())
        self.fused = fused
        self.conv3x3 = None
        self.conv1x1 = None


class RepC3(nn.Module):
    """CSP block of the CCFM: (1x1 conv -> n RepConvs) + 1x1 conv, then 1x1 conv if widths differ."""

    def __init__(self, in_ch: int, out_ch: int, n_convs: int = 3, expansion: float = 1.0) -> None:
        super().__init__()
        hidden = int(out_ch * expansion)
        self.cv1 = ConvNormAct(in_ch, hidden, 1)
        self.cv2 = ConvNormAct(in_ch, hidden, 1)
        self.m = nn.Sequential(*(RepConv(hidden) for _ in range(n_convs)))
        self.cv3 = ConvNormAct(hidden, out_ch, 1) if hidden != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.m(self.cv1(x)) + self.cv2(x))


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections (so query/key may carry a
    position embedding the value does not) and ``scaled_dot_product_attention``.

    Same parameters as ``nn.MultiheadAttention``: 4 * (d*d + d).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), self._split(self.v_proj(value))
        out = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


def sincos_position_embedding_2d(
    h: int, w: int, dim: int, device: torch.device, dtype: torch.dtype, temperature: float = 10000.0
) -> torch.Tensor:
    """[1, h*w, dim] fixed 2-D sin-cos embedding: a quarter of the channels each for
    sin/cos of the first and of the second grid coordinate.

    The grid is enumerated the way RT-DETR/Ultralytics do (``meshgrid(arange(w),
    arange(h), indexing="ij")`` flattened), so token ``t`` gets coordinates
    ``(t // h, t % h)``. For square maps this is (row, column) of the row-major token;
    keeping the reference's order keeps pretrained AIFI weights meaningful.
    """
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    first, second = torch.meshgrid(
        torch.arange(w, device=device, dtype=torch.float32),
        torch.arange(h, device=device, dtype=torch.float32),
        indexing="ij",
    )
    a = first.reshape(-1, 1) * omega  # outer products by broadcasting
    b = second.reshape(-1, 1) * omega
    return torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1)[None].to(dtype)


class AIFI(nn.Module):
    """Attention-based Intra-scale Feature Interaction: one post-norm transformer
    encoder layer (GELU FFN) over the tokens of one level, with a 2-D sin-cos position
    embedding added to queries and keys."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        pos = sincos_position_embedding_2d(h, w, c, device=x.device, dtype=x.dtype)
        qk = tokens + pos
        tokens = self.norm1(tokens + self.attn(qk, qk, tokens))
        tokens = self.norm2(tokens + self.fc2(self.act(self.fc1(tokens))))
        return tokens.transpose(1, 2).reshape(b, c, h, w)


def check_level_sizes(levels: Sequence[torch.Tensor]) -> None:
    """Raise ``UserError`` unless the three levels shrink by a stride-2 conv each step
    (``next == ceil(prev / 2)``), which the PAN's 3x3 s2 convs and the concats require."""
    if len(levels) != NUM_LEVELS:
        raise UserError(f"RT-DETR head needs {NUM_LEVELS} feature levels, got {len(levels)}")
    sizes = [tuple(int(s) for s in f.shape[-2:]) for f in levels]
    for (h0, w0), (h1, w1) in zip(sizes, sizes[1:]):
        if (h1, w1) != ((h0 + 1) // 2, (w0 + 1) // 2):
            raise UserError(
                f"feature levels must halve in size from level to level (strides x2), got sizes {sizes}; "
                "use a backbone whose three deepest levels are at strides s, 2s, 4s"
            )


class HybridEncoder(nn.Module):
    """rtdetr-l's neck: AIFI on the deepest level, then CCFM (FPN top-down + PAN bottom-up)."""

    def __init__(self, in_channels: Sequence[int], cfg: RTDETRHeadConfig) -> None:
        super().__init__()
        c = cfg.hidden_dim
        # input_proj[i]: 1x1 conv + BN, no activation (yaml: Conv[256, 1, 1, None, 1, 1, False]).
        self.input_proj = nn.ModuleList(ConvNormAct(ch, c, 1, act=None) for ch in in_channels)
        self.aifi = AIFI(c, cfg.aifi_ffn_dim, cfg.aifi_heads)
        # Index 0 works on the deepest level (Y5), index 1 on the middle one (Y4).
        self.lateral_convs = nn.ModuleList(ConvNormAct(c, c, 1) for _ in range(2))
        self.fpn_blocks = nn.ModuleList(RepC3(2 * c, c, cfg.repc3_convs, cfg.repc3_expansion) for _ in range(2))
        self.downsample_convs = nn.ModuleList(ConvNormAct(c, c, 3, stride=2) for _ in range(2))
        self.pan_blocks = nn.ModuleList(RepC3(2 * c, c, cfg.repc3_convs, cfg.repc3_expansion) for _ in range(2))

    @staticmethod
    def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        # Nearest x2 when sizes are exact halves (identical to scale_factor=2); also
        # covers odd sizes, where the deeper level is ceil(size / 2).
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    def forward(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (proj(f) for proj, f in zip(self.input_proj, levels))
        y5 = self.lateral_convs[0](self.aifi(p5))
        y4 = self.lateral_convs[1](self.fpn_blocks[0](torch.cat([self._upsample_to(y5, p4), p4], 1)))
        x3 = self.fpn_blocks[1](torch.cat([self._upsample_to(y4, p3), p3], 1))
        f4 = self.pan_blocks[0](torch.cat([self.downsample_convs[0](x3), y4], 1))
        f5 = self.pan_blocks[1](torch.cat([self.downsample_convs[1](f4), y5], 1))
        return [x3, f4, f5]


# ------------------------------------------------------------------------------------
# Decoder


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def sample_multi_scale(
    value: torch.Tensor,
    level_shapes: Sequence[tuple[int, int]],
    locations: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted sum of bilinearly sampled values (pure-PyTorch multi-scale deformable attention).

    value [B, S, heads, d]; locations [B, Q, heads, levels, points, 2] in 0..1 (x, y);
    weights [B, Q, heads, levels, points]. Returns [B, Q, heads * d].
    """
    b, _, heads, d = value.shape
    _, q, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1  # grid_sample wants -1..1
    per_level = value.split([h * w for h, w in level_shapes], dim=1)
    sampled = []
    for lvl, (h, w) in enumerate(level_shapes):
        # [B, h*w, heads, d] -> [B*heads, d, h, w]
        v = per_level[lvl].permute(0, 2, 3, 1).reshape(b * heads, d, h, w)
        # [B, Q, heads, points, 2] -> [B*heads, Q, points, 2]
        g = grids[:, :, :, lvl].transpose(1, 2).reshape(b * heads, q, points, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [B*heads, d, Q, levels*points] @ weights [B*heads, Q, levels*points, 1]: a matmul so
    # the MAC counter sees the weighting (the reference multiplies and sums).
    stacked = torch.stack(sampled, dim=-2).flatten(-2).permute(0, 2, 1, 3)  # [B*heads, Q, d, L*P]
    w = weights.transpose(1, 2).reshape(b * heads, q, levels * points, 1)
    out = (stacked @ w).view(b, heads, q, d)
    return out.permute(0, 2, 1, 3).reshape(b, q, heads * d)


class MSDeformableAttention(nn.Module):
    """Multi-scale deformable cross-attention (Deformable DETR) with box-relative offsets."""

    def __init__(self, dim: int, levels: int, heads: int, points: int) -> None:
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(
        self, query: torch.Tensor, ref_boxes: torch.Tensor, value: torch.Tensor, level_shapes: Sequence[tuple[int, int]]
    ) -> torch.Tensor:
        b, q, dim = query.shape
        v = self.value_proj(value).view(b, value.shape[1], self.heads, dim // self.heads)
        offsets = self.sampling_offsets(query).view(b, q, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(b, q, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(b, q, self.heads, self.levels, self.points)
        # Points start at the box centre and move by offset / points * half the box size.
        centre = ref_boxes[:, :, None, None, None, :2]
        half_wh = ref_boxes[:, :, None, None, None, 2:] * 0.5
        locations = centre + offsets / self.points * half_wh
        return self.output_proj(sample_multi_scale(v, level_shapes, locations, weights))


class DecoderLayer(nn.Module):
    """Post-norm: self-attention -> deformable cross-attention -> ReLU FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, levels: int, points: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, levels, heads, points)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        queries: torch.Tensor,
        ref_boxes: torch.Tensor,
        value: torch.Tensor,
        level_shapes: Sequence[tuple[int, int]],
        query_pos: torch.Tensor,
    ) -> torch.Tensor:
        qk = queries + query_pos
        queries = self.norm1(queries + self.self_attn(qk, qk, queries))
        queries = self.norm2(queries + self.cross_attn(queries + query_pos, ref_boxes, value, level_shapes))
        return self.norm3(queries + self.linear2(F.relu(self.linear1(queries))))


def make_anchors(
    level_shapes: Sequence[tuple[int, int]], device: torch.device, dtype: torch.dtype,
    base_size: float = 0.05, eps: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor boxes at every position, as logits [1, S, 4], and a validity mask [1, S, 1].

    Centres are cell centres in 0..1; width = height = base_size * 2**level. Anchors
    touching the border (any coordinate outside (eps, 1-eps)) are invalid: their logit
    is +inf and their encoder feature is zeroed.
    """
    boxes = []
    for lvl, (h, w) in enumerate(level_shapes):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        size = torch.full_like(cx, base_size * 2.0**lvl)
        boxes.append(torch.stack([cx, cy, size, size], dim=-1).reshape(h * w, 4))
    anchors = torch.cat(boxes)[None]
    valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
    logits = torch.log(anchors / (1 - anchors)).masked_fill(~valid, float("inf"))
    return logits, valid


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, S, C], index [B, K] -> x[b, index[b, k]] as [B, K, C]."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


class RTDETRDecoder(nn.Module):
    """Query selection from the encoder outputs + deformable transformer decoder."""

    def __init__(self, in_channels: Sequence[int], cfg: RTDETRHeadConfig) -> None:
        super().__init__()
        d, nc = cfg.hidden_dim, cfg.num_classes
        self.num_queries = cfg.num_queries
        self.input_proj = nn.ModuleList(ConvNormAct(ch, d, 1, act=None) for ch in in_channels)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.decoder_heads, cfg.decoder_ffn_dim, len(in_channels), cfg.decoder_points)
            for _ in range(cfg.decoder_layers)
        )
        # Training-time denoising label embedding (unused here; kept so counts match Ultralytics).
        self.denoising_class_embed = nn.Embedding(nc, d)
        self.query_pos_head = MLP(4, 2 * d, d, num_layers=2)
        self.enc_output = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))
        self.enc_score_head = nn.Linear(d, nc)
        self.enc_bbox_head = MLP(d, d, 4, num_layers=3)
        self.dec_score_head = nn.ModuleList(nn.Linear(d, nc) for _ in range(cfg.decoder_layers))
        self.dec_bbox_head = nn.ModuleList(MLP(d, d, 4, num_layers=3) for _ in range(cfg.decoder_layers))
        self._init_heads()

    def _init_heads(self) -> None:
        # As in RT-DETR: class bias at prior 0.01, box heads start at the anchors (zero correction).
        prior_bias = -math.log((1 - 0.01) / 0.01)
        for score in [self.enc_score_head, *self.dec_score_head]:
            nn.init.constant_(score.bias, prior_bias)
        for box in [self.enc_bbox_head, *self.dec_bbox_head]:
            nn.init.zeros_(box.layers[-1].weight)
            nn.init.zeros_(box.layers[-1].bias)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        for layer in self.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj.conv.weight)

    def _flatten_levels(self, levels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        projected = [proj(f) for proj, f in zip(self.input_proj, levels)]
        shapes = [(int(f.shape[2]), int(f.shape[3])) for f in projected]
        return torch.cat([f.flatten(2).transpose(1, 2) for f in projected], dim=1), shapes

    def _select_queries(
        self, memory: torch.Tensor, shapes: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k positions by best class score -> (content, reference logits, enc boxes, enc logits).

        k = ``num_queries``, or every position when the levels hold fewer (tiny inputs),
        as current Ultralytics does; a shape-only decision, so it works on ``meta``.
        """
        anchors, valid = make_anchors(shapes, memory.device, memory.dtype)
        features = self.enc_output(memory * valid)
        scores = self.enc_score_head(features)
        k = min(self.num_queries, memory.shape[1])
        top = scores.max(-1).values.topk(k, dim=1).indices  # [B, k]
        content = gather_rows(features, top)
        ref_logits = self.enc_bbox_head(content) + gather_rows(anchors.expand(memory.shape[0], -1, -1), top)
        return content, ref_logits, ref_logits.sigmoid(), gather_rows(scores, top)

    def _decode(self, levels: Sequence[torch.Tensor], all_layers: bool) -> DecoderOutputs:
        memory, shapes = self._flatten_levels(levels)
        queries, ref_logits, enc_boxes, enc_logits = self._select_queries(memory, shapes)
        if self.training:  # the decoder refines a fixed proposal (no gradient into the selection)
            queries, ref_logits = queries.detach(), ref_logits.detach()
        ref = ref_logits.sigmoid()
        boxes, logits = [], []
        previous = ref
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            queries = layer(queries, ref, memory, shapes, self.query_pos_head(ref))
            delta = self.dec_bbox_head[i](queries)
            refined = torch.sigmoid(delta + inverse_sigmoid(ref))
            if all_layers or i == last:
                # During training layer i>0 is supervised through the previous,
                # non-detached box (the RT-DETR/Ultralytics convention).
                reported = (refined if (i == 0 or not self.training)
                            else torch.sigmoid(delta + inverse_sigmoid(previous)))
                boxes.append(reported)
                logits.append(self.dec_score_head[i](queries))
            previous = refined
            ref = refined.detach() if self.training else refined
        return DecoderOutputs(torch.stack(boxes), torch.stack(logits), enc_boxes, enc_logits)

    def forward(self, levels: Sequence[torch.Tensor]) -> Detections:
        out = self._decode(levels, all_layers=False)
        return Detections(out.boxes[-1], out.logits[-1])

    def forward_all(self, levels: Sequence[torch.Tensor]) -> DecoderOutputs:
        return self._decode(levels, all_layers=True)


class RTDETRHead(nn.Module):
    """Neck (``HybridEncoder``) + ``RTDETRDecoder`` over three levels with ``in_channels``."""

    def __init__(self, in_channels: Sequence[int], cfg: RTDETRHeadConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or RTDETRHeadConfig()
        cfg.validate()
        if len(in_channels) != NUM_LEVELS:
            raise UserError(f"RT-DETR head needs {NUM_LEVELS} input levels, got in_channels={tuple(in_channels)}")
        self.cfg = cfg
        self.in_channels = tuple(in_channels)
        self.encoder = HybridEncoder(in_channels, cfg)
        self.decoder = RTDETRDecoder([cfg.hidden_dim] * NUM_LEVELS, cfg)

    def forward(self, levels: Sequence[torch.Tensor]) -> Detections:
        check_level_sizes(levels)
        return self.decoder(self.encoder(levels))

    def forward_all(self, levels: Sequence[torch.Tensor]) -> DecoderOutputs:
        check_level_sizes(levels)
        return self.decoder.forward_all(self.encoder(levels))


class RTDETR(nn.Module):
    """Backbone (its three deepest levels) + RT-DETR head. ``forward`` -> ``Detections``."""

    def __init__(self, backbone: Backbone, head: RTDETRHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = list(self.backbone.forward_features(x))
        if len(levels) < NUM_LEVELS:
            raise UserError(f"backbone returned {len(levels)} feature levels; RT-DETR needs {NUM_LEVELS}")
        return levels[-NUM_LEVELS:]

    def forward(self, x: torch.Tensor) -> Detections:
        return self.head(self._levels(x))

    def forward_all(self, x: torch.Tensor) -> DecoderOutputs:
        return self.head.forward_all(self._levels(x))


def _check_backbone(backbone: nn.Module) -> tuple[int, ...]:
    """The channels of the three deepest levels, or a ``UserError`` saying what is wrong."""
    channels = tuple(getattr(backbone, "out_channels", ()) or ())
    strides = tuple(getattr(backbone, "out_strides", ()) or ())
    if not hasattr(backbone, "forward_features"):
        raise UserError(f"{type(backbone).__name__} has no forward_features(); RT-DETR needs a nasbench Backbone")
    if len(channels) < NUM_LEVELS or len(strides) != len(channels):
        raise UserError(
            f"{type(backbone).__name__} declares {len(channels)} feature levels (out_channels={channels}, "
            f"out_strides={strides}); RT-DETR needs {NUM_LEVELS}"
        )
    deepest = strides[-NUM_LEVELS:]
    if any(b != 2 * a for a, b in zip(deepest, deepest[1:])):
        raise UserError(
            f"{type(backbone).__name__} levels have strides {deepest}; RT-DETR needs each level at twice "
            "the stride (half the size) of the previous one, e.g. 8/16/32"
        )
    return channels[-NUM_LEVELS:]


def build_rtdetr(backbone: Backbone, num_classes: int = 80, head: RTDETRHeadConfig | None = None) -> RTDETR:
    """RT-DETR (rtdetr-l head unless ``head`` says otherwise) on ``backbone``'s three deepest levels."""
    cfg = head or RTDETRHeadConfig()
    if cfg.num_classes != num_classes:
        cfg = replace(cfg, num_classes=num_classes)
    return RTDETR(backbone, RTDETRHead(_check_backbone(backbone), cfg))


def rtdetr_l(num_classes: int = 80) -> RTDETR:
    """Ultralytics rtdetr-l: HGNetv2-L (no classifier) + rtdetr-l head; 32,970,476 params at 80 classes."""
    from nasbench.families.hgnetv2 import PRESETS, build  # families import nothing from here

    backbone = build(replace(PRESETS["hgnetv2_l"], num_classes=0))
    return build_rtdetr(backbone, num_classes)


__all__ = [
    "RTDETR", "RTDETRHead", "RTDETRHeadConfig", "RTDETRDecoder", "HybridEncoder", "AIFI", "RepC3", "RepConv",
    "Detections", "DecoderOutputs", "build_rtdetr", "rtdetr_l",
]
