"""The MAC counter against hand counts, and the cross-check counters where they are wrong."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench.metrics.cost import count_cost, count_params, macs_fvcore, macs_thop

C, HEADS, IMG = 32, 4, 16  # channels, heads, input px -> N = 256 tokens


class TinyAttention(nn.Module):
    """1x1 patch embed -> qkv -> attention -> proj, in one of two spellings."""

    def __init__(self, use_sdpa: bool) -> None:
        super().__init__()
        self.use_sdpa = use_sdpa
        self.embed = nn.Conv2d(3, C, 1, bias=False)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)  # [B, N, C]
        b, n, _ = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, HEADS, C // HEADS).permute(2, 0, 3, 1, 4)
        if self.use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * (C // HEADS) ** -0.5
            o = attn.softmax(-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, n, C))


N = IMG * IMG
EMBED_MACS = N * 3 * C
LINEAR_MACS = N * C * 3 * C + N * C * C
ATTENTION_MACS = 2 * N * N * C  # QK^T (N*N*d per head) + AV (same), summed over heads
ANALYTIC = EMBED_MACS + LINEAR_MACS + ATTENTION_MACS


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_attention_counted_exactly_in_both_spellings(use_sdpa: bool) -> None:
    cost = count_cost(TinyAttention(use_sdpa), IMG)
    assert cost.macs == ANALYTIC == 5_267_456
    assert cost.flops == 2 * ANALYTIC
    assert cost.counter == "flop_counter[meta]"


def test_cpu_fallback_counts_sdpa_too() -> None:
    """A model that cannot run on meta is counted on the CPU; the CPU flash-attention
    kernel (which torch's own table misses) is still counted."""

    class ReadsValues(TinyAttention):
        def forward(self, x):
            if x.abs().sum().item() < 0:  # data-dependent: impossible on meta
                return x
            return super().forward(x)

    cost = count_cost(ReadsValues(use_sdpa=True), IMG)
    assert cost.counter == "flop_counter[cpu]"
    assert cost.macs == ANALYTIC


def test_fvcore_and_thop_miss_what_they_miss() -> None:
    explicit, fused = TinyAttention(False), TinyAttention(True)
    # fvcore sees explicit matmuls but not scaled_dot_product_attention.
    assert macs_fvcore(explicit, IMG) == ANALYTIC
    assert macs_fvcore(fused, IMG) == ANALYTIC - ATTENTION_MACS
    # thop only sees hooked modules (conv, linear): attention is invisible either way.
    assert macs_thop(explicit, IMG) == EMBED_MACS + LINEAR_MACS
    assert macs_thop(fused, IMG) == EMBED_MACS + LINEAR_MACS


def test_counting_never_touches_weights() -> None:
    model = TinyAttention(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_cost(model, IMG)
    macs_thop(model, IMG)
    after = model.state_dict()
    assert before.keys() == after.keys()  # thop's buffers were not left behind
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_grouped_and_depthwise_convs() -> None:
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False),  # 16 * (8/2) * 9 per pixel
        nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False),  # depthwise
    )
    cost = count_cost(_WithChannels(model, 8), 8)
    assert cost.macs == 64 * 16 * 4 * 9 + 16 * 16 * 9


class _WithChannels(nn.Module):
    """Adapts a 3-channel image input to ``ch`` channels without MACs (repeat)."""

    def __init__(self, body: nn.Module, ch: int) -> None:
        super().__init__()
        self.body, self.ch = body, ch

    def forward(self, x):
        return self.body(x[:, :1].expand(-1, self.ch, -1, -1))


def test_einsum_and_batch() -> None:
    class Ein(nn.Module):
        def forward(self, x):
            t = x.flatten(2)  # [B, 3, N]
            return torch.einsum("bcn,bdn->bcd", t, t)

    assert count_cost(Ein(), 8, batch=2).macs == 2 * 3 * 3 * 64


def test_params_shared_counted_once() -> None:
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, lin)
    assert count_params(model) == (20, 20)


# ---------------------------------------------------------------------------------------
# Element-wise MACs a module declares (``elementwise_macs``): counted, attributed, and
# invisible to the cross-check counters.
GATE_C, GATE_PX = 8, 6


class Gate(nn.Module):
    """x * sigmoid(w): one declared multiply per output element; called twice below."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(GATE_C, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.w)

    def elementwise_macs(self, output: torch.Tensor) -> int:
        return output.numel()


class Gated(nn.Module):
    def __init__(self, read_values: bool = False) -> None:
        super().__init__()
        self.read_values = read_values
        self.conv = nn.Conv2d(3, GATE_C, 1, bias=False)
        self.block = nn.Sequential(Gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(self.conv(x))
        if self.read_values and y.sum().item() < float("-inf"):  # after the Gate ran: fails on meta
            return y
        return self.block(y)  # the same Gate again: counted per call


GATE_CONV_MACS = GATE_PX * GATE_PX * 3 * GATE_C
GATE_CALL_MACS = GATE_PX * GATE_PX * GATE_C  # per call, batch 1


@pytest.mark.parametrize("read_values", [False, True])
def test_declared_elementwise_macs(read_values: bool) -> None:
    """Counted per call, on meta and on the CPU fallback (the failed meta attempt, which
    had already run the Gate once, adds nothing), attributed to the module and parents."""
    model = Gated(read_values)
    cost = count_cost(model, GATE_PX, batch=2)
    assert cost.counter == ("flop_counter[cpu]" if read_values else "flop_counter[meta]")
    declared = 2 * 2 * GATE_CALL_MACS  # two calls, batch 2
    assert cost.macs == 2 * GATE_CONV_MACS + declared == 2_880
    assert cost.by_op == {"aten.convolution": 2 * GATE_CONV_MACS, "Gate (element-wise)": declared}
    assert cost.by_module["Gated.block.0"] == cost.by_module["Gated.block"] == declared
    assert cost.by_module["Gated.conv"] == 2 * GATE_CONV_MACS
    assert cost.by_module["Gated"] == cost.macs
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_cross_checks_ignore_declared_elementwise() -> None:
    model = Gated()
    assert macs_fvcore(model, GATE_PX) == GATE_CONV_MACS
    assert macs_thop(model, GATE_PX) == GATE_CONV_MACS
