"""Zero-cost scores: one forward/backward (or a few) of a freshly initialised model.

Every score reads the model alone, so a user's ``file.py:factory`` gets one too. None
looks at names, families or published numbers. Each works on a deep copy, so the
caller's model (its weights, mode, dtype) is never changed.

What is computed (papers in ../shared/ACCURACY_ANCHORS.md; closed forms are checked by
tests/estimate/test_zerocost.py on hand-sized nets):
- ``grad_norm``  sum over weight layers of ||dL/dW||_2, cross-entropy on random labels.
- ``synflow``    log of sum |W * dR/dW| with every weight replaced by |W|, eval-mode norms,
                 an all-ones input in float64 and R = sum of the logits (Tanaka et al.).
- ``naswot``     log|det K| of the activation-pattern kernel (Mellor et al.). ReLU-only in
                 the paper; here a unit's bit is the sign of the input of any ReLU, ReLU6,
                 GELU, SiLU, hard-swish, Mish, ELU or leaky ReLU, and for an element-wise
                 max of two tensors (dynamic ReLU, maxout) which of the two is larger, so
                 GELU/SiLU/hard-swish networks get a code too.
- ``zico``       sum over weight layers of log(sum_theta E|g| / std(g)), the statistics
                 taken over batches (Li et al., ICLR 2023).
- ``jacob_cov``  -(sum log(l + k) + 1/(l + k)) over the eigenvalues l of the correlation
                 matrix of the input Jacobians of a batch (Mellor et al., v1), k = 1e-5.
- ``meco``       sum over weight layers of the smallest eigenvalue of the channel
                 correlation matrix of that layer's output for the first image (Jiang et
                 al., NeurIPS 2023).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

# Layers whose weights the gradient scores read: every learned linear map.
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
JACOB_COV_K = 1e-5


@dataclass(frozen=True)
class ScoreBatch:
    """Normalised images [N, 3, H, W] (float32) and random labels [N] in [0, num_classes)."""

    images: torch.Tensor
    labels: torch.Tensor


def weight_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, weight) of every conv/linear layer and every attention input projection."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            found.append((f"{name}.weight", module.weight))
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            found.append((f"{name}.in_proj_weight", module.in_proj_weight))
    return found


def scoring_copy(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A deep copy in ``dtype`` whose parameters all require grad (the caller's model stays as it is)."""
    clone = copy.deepcopy(model).to(dtype)
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def logits_of(output) -> torch.Tensor:
    """The class logits of a forward's output (a tensor, or the first tensor of a tuple/list)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def _loss_grads(model: nn.Module, batch: ScoreBatch, weights: list[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(logits_of(model(batch.images)), batch.labels)
    loss.backward()
    return [w.grad.detach().reshape(-1) if w.grad is not None else torch.zeros(w.numel()) for _, w in weights]


# ----------------------------------------------------------------------------- gradient scores
def grad_norm(model: nn.Module, batch: ScoreBatch) -> float:
    """Sum over weight layers of the L2 norm of the loss gradient (one batch, train mode)."""
    clone = scoring_copy(model).train()
    grads = _loss_grads(clone, batch, weight_tensors(clone))
    return float(sum(g.norm().item() for g in grads))


def zico(model: nn.Module, batches: Sequence[ScoreBatch]) -> float:
    """ZiCo: sum over weight layers of log(sum over weights of mean|g| / std(g)).

    mean and std (population, ddof 0) run over the per-batch gradients; weights whose
    gradient does not vary between batches are skipped, as are layers left with none.
    """
    if len(batches) < 2:
        raise ValueError("zico needs at least 2 batches (a standard deviation over batches)")
    clone = scoring_copy(model).train()
    weights = weight_tensors(clone)
    n = len(batches)
    mean = [torch.zeros(w.numel(), dtype=torch.float64) for _, w in weights]
    mean_abs = [torch.zeros(w.numel(), dtype=torch.float64) for _, w in weights]
    sq = [torch.zeros(w.numel(), dtype=torch.float64) for _, w in weights]
    for batch in batches:
        for i, g in enumerate(_loss_grads(clone, batch, weights)):
            g = g.double()
            mean[i] += g / n
            mean_abs[i] += g.abs() / n
            sq[i] += g * g / n
    score = 0.0
    for m, m_abs, s in zip(mean, mean_abs, sq):
        std = (s - m * m).clamp_min(0).sqrt()
        varying = std > 1e-30 * m_abs.clamp_min(1e-300)
        total = float((m_abs[varying] / std[varying]).sum())
        if total > 0:
            score += math.log(total)
    return score


def synflow(model: nn.Module, imgsz: int, in_chans: int = 3) -> float:
    """log of sum over weight layers of |W * dR/dW| (signs removed, float64, all-ones input)."""
    clone = scoring_copy(model, torch.float64).eval()
    with torch.no_grad():
        for p in clone.parameters():
            p.abs_()
    weights = weight_tensors(clone)
    clone.zero_grad(set_to_none=True)
    ones = torch.ones(1, in_chans, imgsz, imgsz, dtype=torch.float64)
    logits_of(clone(ones)).sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for _, w in weights if w.grad is not None)
    return math.log(total) if total > 0 and math.isfinite(total) else float("-inf") if total == 0 else float("inf")


def jacob_cov(model: nn.Module, batch: ScoreBatch) -> float:
    """Jacobian covariance score: eigenvalues of the correlation of per-image input gradients."""
    clone = scoring_copy(model).train()
    x = batch.images.clone().requires_grad_(True)
    logits_of(clone(x)).sum().backward()
    jac = x.grad.reshape(x.shape[0], -1).double()
    corr = torch.nan_to_num(torch.corrcoef(jac))
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + JACOB_COV_K) + 1.0 / (eig + JACOB_COV_K)).sum())


# ----------------------------------------------------------------------------- activation scores
_SIGN_ACTIVATIONS = {
    F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6, F.hardtanh,
    F.hardtanh_, F.gelu, F.silu, F.hardswish, F.mish, F.elu, F.leaky_relu, F.leaky_relu_,
}
_MAX_OF_TWO = {torch.maximum, torch.max, torch.Tensor.maximum, torch.Tensor.max}


class ActivationPatterns(TorchFunctionMode):
    """Records, per call of a piecewise activation, each unit's bit for every image.

    Bits are taken from the input before the call (in-place activations overwrite it).
    ``codes`` holds one bool tensor [images, units] per call. A tensor whose leading dim
    is a multiple of the batch (windows or heads folded into it, batch-major) is split
    per image; one that is not (sequence-first layouts) is skipped.
    """

    def __init__(self, images: int) -> None:
        super().__init__()
        self.images = images
        self.codes: list[torch.Tensor] = []

    def _record(self, bits: torch.Tensor) -> None:
        if bits.dim() > 1 and bits.shape[0] % self.images == 0:
            self.codes.append(bits.reshape(self.images, -1))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SIGN_ACTIVATIONS and args and isinstance(args[0], torch.Tensor):
            self._record(args[0].detach() > 0)
        elif (func in _MAX_OF_TWO and len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args)
              and args[0].shape == args[1].shape):
            self._record(args[0].detach() > args[1].detach())
        return func(*args, **kwargs)


def pattern_kernel(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """K[i, j] = number of units on which images i and j have the same bit (float64)."""
    n = codes[0].shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for c in codes:
        on = c.double()
        kernel += on @ on.T + (1 - on) @ (1 - on).T
    return kernel


def naswot(model: nn.Module, batch: ScoreBatch) -> float:
    """log|det K| of the activation-pattern kernel of one batch (train-mode norms)."""
    clone = scoring_copy(model).train()
    recorder = ActivationPatterns(batch.images.shape[0])
    with torch.no_grad(), recorder:
        clone(batch.images)
    if not recorder.codes:
        return float("nan")
    _sign, logdet = torch.linalg.slogdet(pattern_kernel(recorder.codes))
    return float(logdet)


# ----------------------------------------------------------------------------- feature-map score
@contextmanager
def layer_outputs(model: nn.Module, keep: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                  ) -> Iterator[list[torch.Tensor]]:
    """Collect ``keep(layer, output)`` of every weight layer during the forwards inside the block."""
    kept: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, _i, out: kept.append(keep(m, out.detach())))
               for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    try:
        yield kept
    finally:
        for h in handles:
            h.remove()


def _first_image_rows(layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """The first image's output as [channels, positions]: a conv's channels are dim 1, a
    linear layer's the last dim (tokens [N, L, C], channel-last maps [N, H, W, C])."""
    first = out[0].double()
    if isinstance(layer, nn.Linear):
        return first.reshape(-1, first.shape[-1]).T
    return first.reshape(first.shape[0], -1)


def min_corr_eigenvalue(rows: torch.Tensor) -> float:
    """Smallest eigenvalue of the correlation matrix of ``rows`` (0 for constant/degenerate rows)."""
    if rows.shape[0] < 2 or rows.shape[1] < 2:
        return 0.0
    corr = torch.nan_to_num(torch.corrcoef(rows))
    return float(torch.linalg.eigvalsh(corr)[0])


def meco(model: nn.Module, batch: ScoreBatch) -> float:
    """Sum over weight layers of the smallest channel-correlation eigenvalue (first image)."""
    clone = scoring_copy(model).train()
    with torch.no_grad(), layer_outputs(clone, _first_image_rows) as kept:
        clone(batch.images)
    return float(sum(min_corr_eigenvalue(r) for r in kept))
