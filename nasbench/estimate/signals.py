"""Signals: the numbers estimators are built from, each read from the model alone.

A signal is a named float of a model at an input size: a cost feature (``log_params``,
``log_activations`` …, from ``features.py``) or a zero-cost score at initialisation
(``zico``, ``naswot`` …, from ``zerocost.py``, on the built-in images of ``inputs.py``).
``measure_signals`` computes the ones asked for and times each; the reference table of
published presets (``reference.py``) stores every signal, so fitted estimators and rank
averages compare a candidate against the presets on exactly the same footing.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from nasbench.estimate import zerocost as zc
from nasbench.estimate.features import ArchFeatures, arch_features
from nasbench.estimate.inputs import score_batches
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import count_cost

COST_SIGNALS = ("macs", "params", "log_macs", "log_params", "log_positional_params", "log_layers", "grouped_share",
                "dense_share", "attention_share", "linear_share", "log_activations")
ZERO_COST_SIGNALS = ("zico", "naswot", "synflow", "grad_norm", "jacob_cov", "meco")
SIGNALS = COST_SIGNALS + ZERO_COST_SIGNALS
# Zero-cost scores read 2 batches of 8 images (ZiCo needs a spread over batches; the
# others use the first batch); the first probe of the accuracy issue used the same.
SCORE_BATCHES = 2
SCORE_BATCH_SIZE = 8


@dataclass
class SignalContext:
    """What several signals of one model share: its features and its input batches."""

    model: nn.Module
    imgsz: int
    device: torch.device
    _features: ArchFeatures | None = None
    _batches: list[zc.ScoreBatch] | None = None
    _deploy: tuple[int, int] | None = None
    num_classes: int = field(default=1000)

    def features(self) -> ArchFeatures:
        """Structure features of the network that is trained (re-parameterisable branches
        included: they are trained, and they are why such models train better)."""
        if self._features is None:
            self._features = arch_features(self.model, self.imgsz)
        return self._features

    def deploy_cost(self) -> tuple[int, int]:
        """(MACs, params) of the deploy form (BN folded, branches merged): the sizes users
        compare and papers quote, and what the matched-cost pairs are matched on."""
        if self._deploy is None:
            deployed = fuse_for_deploy(copy.deepcopy(self.model))
            cost = count_cost(deployed, self.imgsz)
            self._deploy = (cost.macs, cost.params)
        return self._deploy

    def batches(self) -> list[zc.ScoreBatch]:
        if self._batches is None:
            self._batches = score_batches(self.imgsz, batches=SCORE_BATCHES, batch=SCORE_BATCH_SIZE,
                                          num_classes=self.num_classes, device=self.device)
        return self._batches


DEPLOY_SIGNALS = {"macs": lambda m, p: float(m), "params": lambda m, p: float(p),
                  "log_macs": lambda m, p: math.log(max(m, 1)), "log_params": lambda m, p: math.log(max(p, 1))}


def _cost(name: str) -> Callable[[SignalContext], float]:
    def read(ctx: SignalContext) -> float:
        if name in DEPLOY_SIGNALS:
            return DEPLOY_SIGNALS[name](*ctx.deploy_cost())
        return ctx.features().log_values()[name]
    return read


_ZERO_COST: dict[str, Callable[[SignalContext], float]] = {
    "zico": lambda ctx: zc.zico(ctx.model, ctx.batches()),
    "naswot": lambda ctx: zc.naswot(ctx.model, ctx.batches()[0]),
    "synflow": lambda ctx: zc.synflow(ctx.model, ctx.imgsz),
    "grad_norm": lambda ctx: math.log(zc.grad_norm(ctx.model, ctx.batches()[0])),
    "jacob_cov": lambda ctx: zc.jacob_cov(ctx.model, ctx.batches()[0]),
    "meco": lambda ctx: zc.meco(ctx.model, ctx.batches()[0]),
}
_READERS: dict[str, Callable[[SignalContext], float]] = {**{n: _cost(n) for n in COST_SIGNALS}, **_ZERO_COST}


def num_classes_of(model: nn.Module, imgsz: int) -> int:
    """The width of the model's logits (random labels must lie in range)."""
    with torch.no_grad():
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        was = model.training
        model.eval()
        try:
            out = zc.logits_of(model(torch.zeros(1, 3, imgsz, imgsz, device=device)))
        finally:
            model.train(was)
    return int(out.shape[-1])


def measure_signals(model: nn.Module, imgsz: int, names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(values, seconds) of the named signals; the model is left as it was (scores use copies).

    ``seconds`` has one entry per zero-cost signal, ``features`` for the shared cost
    features (one count + one forward, whatever the number of cost signals) and
    ``setup`` for the logits-width probe that random labels need.
    """
    unknown = [n for n in names if n not in _READERS]
    if unknown:
        raise KeyError(unknown)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ctx = SignalContext(model, imgsz, device)
    seconds: dict[str, float] = {}
    if any(n in COST_SIGNALS for n in names):
        start = time.perf_counter()
        if any(n in DEPLOY_SIGNALS for n in names):
            ctx.deploy_cost()
        if any(n in COST_SIGNALS and n not in DEPLOY_SIGNALS for n in names):
            ctx.features()
        seconds["features"] = time.perf_counter() - start
    if any(n in _ZERO_COST for n in names):
        start = time.perf_counter()
        ctx.num_classes = num_classes_of(model, imgsz)
        seconds["setup"] = time.perf_counter() - start
    values = {}
    for name in names:
        start = time.perf_counter()
        values[name] = float(_READERS[name](ctx))
        if name in _ZERO_COST:
            seconds[name] = time.perf_counter() - start
    return values, seconds


def seconds_for(names: Sequence[str], seconds: dict[str, float]) -> float:
    """What computing only ``names`` costs, from the per-signal ``seconds`` of ``measure_signals``."""
    total = seconds.get("features", 0.0) if any(n in COST_SIGNALS for n in names) else 0.0
    if any(n in _ZERO_COST for n in names):
        total += seconds.get("setup", 0.0) + sum(seconds.get(n, 0.0) for n in names if n in _ZERO_COST)
    return total
