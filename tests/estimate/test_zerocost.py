"""Each zero-cost score equals its closed form on a net small enough to work out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasbench.estimate import zerocost as zc


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def _ce_grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dL/dW of mean cross-entropy for logits W x, written out: (softmax - onehot) x^T / N."""
    p = torch.softmax(x @ w.T, dim=1)
    p[torch.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def test_grad_norm_is_the_norm_of_the_cross_entropy_gradient() -> None:
    x, y = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]), torch.tensor([1, 0])
    expected = _ce_grad(W, x, y).norm().item()
    assert zc.grad_norm(_linear(W.tolist()), zc.ScoreBatch(x, y)) == pytest.approx(expected, rel=1e-6)


def test_zico_is_log_of_summed_mean_abs_over_std() -> None:
    b1 = zc.ScoreBatch(torch.tensor([[1.0, 2.0, -1.0]]), torch.tensor([1]))
    b2 = zc.ScoreBatch(torch.tensor([[0.5, 0.0, 3.0]]), torch.tensor([0]))
    g1, g2 = _ce_grad(W, b1.images, b1.labels), _ce_grad(W, b2.images, b2.labels)
    ratio = ((g1.abs() + g2.abs()) / 2) / ((g1 - g2).abs() / 2)  # population std of two values
    assert zc.zico(_linear(W.tolist()), [b1, b2]) == pytest.approx(math.log(ratio.sum().item()), rel=1e-6)


def test_zico_needs_two_batches() -> None:
    with pytest.raises(ValueError):
        zc.zico(_linear(W.tolist()), [zc.ScoreBatch(torch.ones(1, 3), torch.tensor([0]))])


def test_synflow_of_two_linear_layers_is_log_of_twice_the_path_sum() -> None:
    # R = 1^T |W2| |W1| 1 is linear in each layer, so sum |W * dR/dW| over both layers = 2R.
    w1 = torch.tensor([[0.5, -1.0, 2.0, 0.1], [1.5, 0.25, -0.75, -2.0]])
    w2 = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    net = nn.Sequential(nn.Flatten(), _linear(w1.tolist()), _linear(w2.tolist()))
    ones2, ones4 = torch.ones(2, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    path_sum = (ones2 @ w2.double().abs() @ w1.double().abs() @ ones4).item()
    assert zc.synflow(net, imgsz=2, in_chans=1) == pytest.approx(math.log(2 * path_sum), rel=1e-9)


def test_synflow_leaves_the_callers_model_alone() -> None:
    net = nn.Sequential(nn.Flatten(), _linear(W.tolist()))
    zc.synflow(nn.Sequential(nn.Flatten(), net), imgsz=1, in_chans=3)
    assert torch.equal(net[1].weight, W) and net[1].weight.dtype == torch.float32


def _naswot_net(act: nn.Module) -> nn.Module:
    return nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), act, _linear([[1.0, 1.0, 1.0]]))


def test_naswot_is_logdet_of_the_agreement_kernel() -> None:
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0], [-2.0, -1.0]])
    # pre-activations: [1, 2, 3], [-1, 3, 2], [-2, -1, -3] -> bits 111, 011, 000
    # agreements (of 3 units): K = [[3, 2, 0], [2, 3, 1], [0, 1, 3]], det = 27 - 3 - 12 = 12
    batch = zc.ScoreBatch(x, torch.zeros(3, dtype=torch.long))
    assert zc.naswot(_naswot_net(nn.ReLU()), batch) == pytest.approx(math.log(12.0), rel=1e-9)
    # GELU/SiLU/hard-swish get the same bits: the sign of their input
    for act in (nn.GELU(), nn.SiLU(), nn.Hardswish()):
        assert zc.naswot(_naswot_net(act), batch) == pytest.approx(math.log(12.0), rel=1e-9)


def test_activation_patterns_record_the_larger_of_a_two_way_max() -> None:
    recorder = zc.ActivationPatterns(images=2)
    a, b = torch.tensor([[1.0, -1.0], [0.0, 2.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    with recorder:
        torch.maximum(a, b)
    assert recorder.codes[0].tolist() == [[True, False], [False, True]]


def test_jacob_cov_of_a_linear_net_has_identical_jacobians() -> None:
    # every image has the same input gradient W^T 1: correlation all ones, eigenvalues (n, 0, ..., 0)
    n, k = 4, zc.JACOB_COV_K
    batch = zc.ScoreBatch(torch.randn(n, 3), torch.zeros(n, dtype=torch.long))
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert zc.jacob_cov(_linear(W.tolist()), batch) == pytest.approx(expected, rel=1e-6)


def test_meco_is_one_minus_the_channel_correlation() -> None:
    # a 1x1 identity conv passes two channels through; their correlation r gives eigenvalues 1 +- r
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    c0 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    c1 = torch.tensor([2.0, 1.0, 4.0, 3.0], dtype=torch.float64)
    r = torch.corrcoef(torch.stack([c0, c1]))[0, 1].item()  # 0.6
    image = torch.stack([c0, c1]).view(1, 2, 2, 2).float()
    batch = zc.ScoreBatch(image, torch.zeros(1, dtype=torch.long))
    assert zc.meco(conv, batch) == pytest.approx(1 - abs(r), abs=1e-9)
