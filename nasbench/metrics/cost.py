"""Params and MACs with one counter that sees every multiply-accumulate.

The counter is torch's ``FlopCounterMode`` run on the ``meta`` device: no real compute
(milliseconds even for VOLO-D5), and ``F.scaled_dot_product_attention`` decomposes there
into the two ``bmm``s it really does, so attention is counted whatever kernel the real
device would pick. Models that cannot run on ``meta`` (they read tensor values, or build
tensors on a fixed device in ``forward``) are counted on the CPU instead, with an extra
formula for the CPU flash-attention kernel that torch's table lacks.

Conventions (stated in every report):
- ``macs``: multiply-accumulates of conv (incl. grouped/depthwise), linear, matmul/bmm,
  einsum, attention (QK^T and AV) and bilinear ``grid_sample`` (4 per output element).
  Normalisation, activations, softmax, pooling and element-wise ops are not MACs and are
  not counted (the convention of the papers and of fvcore/timm), except the element-wise
  MACs a module declares itself (``elementwise_macs``, below; e.g. Mobile-Former's
  dynamic ReLU).
- ``flops`` = 2 x ``macs``, always.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula  # noqa: F401

aten = torch.ops.aten


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel: QK^T and AV, 2 FLOPs per MAC."""
    b, h, s_q, d_q = query_shape
    s_k = key_shape[-2]
    d_v = value_shape[-1]
    return 2 * b * h * s_q * s_k * d_q + 2 * b * h * s_q * s_k * d_v


def _grid_sampler_flop(input_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    """Bilinear grid_sample: 4 MACs (corner weights) per output element per channel."""
    n, c = input_shape[0], input_shape[1]
    points = math.prod(grid_shape[1:-1])
    return 2 * 4 * n * c * points


EXTRA_FORMULAS: dict[Any, Any] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    aten.grid_sampler_2d: _grid_sampler_flop,
}


@dataclass(frozen=True)
class Cost:
    """Static cost of one forward pass, with what is needed to trust it."""

    params: int
    params_trainable: int
    macs: int
    input_shape: tuple[int, ...]
    counter: str  # "flop_counter[meta]" or "flop_counter[cpu]"
    count_s: float
    by_module: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    by_op: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Bytes eager execution reads and writes per forward, at the counted batch, in the model's
    # own dtype: every non-view op's tensor inputs and outputs (see BytesMoved).
    weight_bytes: int = field(default=0, compare=False)
    activation_bytes: int = field(default=0, compare=False)

    @property
    def flops(self) -> int:
        """FLOPs under the 2-per-MAC convention."""
        return 2 * self.macs


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared tensors counted once."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def _stand_in_state(model: nn.Module, on_meta: bool) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name, as a shape-only meta tensor or a detached one.

    Detached on the real device: with nothing requiring grad, FlopCounterMode's module tracker adds
    no backward hooks, which fail under inference_mode when a parameter-derived tensor is
    passed into a submodule (Mobile-Former's tokens). Tied names share one stand-in.
    """
    made: dict[int, torch.Tensor] = {}
    state = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, t in named:
        if id(t) not in made:
            made[id(t)] = torch.empty_like(t, device="meta") if on_meta else t.detach()
        state[name] = made[id(t)]
    return state


# Declared element-wise MACs. Element-wise ops stay uncounted everywhere (see Conventions),
# with one explicit exception: a module whose paper counts a data-dependent element-wise
# scaling as part of its arithmetic defines ``elementwise_macs(self, output) -> int``
# (shapes only, so it works on meta and on the CPU fallback alike). Mobile-Former's MAdds
# include the two slope multiplies per activation of its dynamic ReLU, max(a1*x, a2*x).
# A forward hook adds what the method returns, per call, to the total, to the module and
# its parents (by module path) in ``by_module``, and to ``by_op`` as "<ClassName>
# (element-wise)". fvcore/thop never see these hooks: their cross-check columns are unchanged.
ElementwiseRecord = tuple[str, str, int]  # (module path as in by_module, by_op key, MACs)


@contextlib.contextmanager
def _declared_elementwise(model: nn.Module) -> Iterator[list[ElementwiseRecord]]:
    """Hook every submodule defining ``elementwise_macs``; yield the list its calls fill."""
    records: list[ElementwiseRecord] = []
    root = type(model).__name__  # FlopCounterMode names modules "<RootClass>.<path>"

    def hook_for(path: str, op: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            records.append((path, op, int(module.elementwise_macs(output))))
        return hook

    handles = [
        m.register_forward_hook(hook_for(f"{root}.{path}" if path else root, f"{type(m).__name__} (element-wise)"))
        for path, m in model.named_modules()
        if callable(getattr(m, "elementwise_macs", None))
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


class BytesMoved(TorchDispatchMode):
    """Bytes each aten op of a forward reads and writes: the tensors it takes and returns.

    Views (``func.is_view``) move nothing and are skipped; an in-place op counts its
    tensor as read and written. Tensors among ``weights`` (parameters and buffers) count
    as weight bytes, everything else as activation bytes. No cache reuse between ops is
    assumed: this is the traffic of eager execution, one kernel per op.
    """

    def __init__(self, weights: set[int]) -> None:
        super().__init__()
        self.weights = weights
        self._views: list[torch.Tensor] = []
        self.weight_bytes = 0
        self.activation_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "is_view", False):
            if any(isinstance(t, torch.Tensor) and id(t) in self.weights for t in tree_leaves(args)):
                self.weights.add(id(out))  # a transposed weight (F.linear) is still a weight
                self._views.append(out)  # kept alive, so its id is never reused by an activation
        else:
            for t in tree_leaves((args, kwargs or {}, out)):
                if isinstance(t, torch.Tensor):
                    size = t.numel() * t.element_size()
                    if id(t) in self.weights:
                        self.weight_bytes += size
                    else:
                        self.activation_bytes += size
        return out


def _run_counted(model: nn.Module, x: torch.Tensor, on_meta: bool
                 ) -> tuple[FlopCounterMode, list[ElementwiseRecord], BytesMoved]:
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    state = _stand_in_state(model, on_meta)
    traffic = BytesMoved({id(t) for t in state.values()})
    grad_mode = torch.inference_mode() if not on_meta else contextlib.nullcontext()
    with grad_mode, counter, traffic, _declared_elementwise(model) as records:
        functional_call(model, state, (x,), strict=False)
    return counter, records, traffic


def _add_elementwise(records: list[ElementwiseRecord], by_module: dict[str, int], by_op: dict[str, int]) -> int:
    """Fold declared element-wise MACs into ``by_module`` (module and parents) and ``by_op``."""
    for path, op, macs in records:
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            key = ".".join(parts[:depth])
            by_module[key] = by_module.get(key, 0) + macs
        by_op[op] = by_op.get(op, 0) + macs
    return sum(macs for _, _, macs in records)


def count_cost(
    model: nn.Module,
    imgsz: int | tuple[int, int] = 224,
    batch: int = 1,
    in_chans: int = 3,
    forward: str = "forward",
) -> Cost:
    """Count params and MACs of ``model`` for one input of ``batch x in_chans x H x W``.

    ``forward`` picks the method counted ("forward" or "forward_features"). The model's
    own weights are never touched: ``functional_call`` swaps in shape-only tensors on
    ``meta``, detached ones on the CPU fallback.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    shape = (batch, in_chans, h, w)
    params, trainable = count_params(model)
    was_training = model.training
    model.eval()
    target = model if forward == "forward" else MethodAsModule(model, forward)
    start = time.perf_counter()
    try:
        try:
            counter, records, traffic = _run_counted(target, torch.empty(shape, device="meta"), on_meta=True)
            where = "meta"
        except Exception:  # data-dependent code or fixed-device tensors: count for real
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            counter, records, traffic = _run_counted(target, torch.randn(shape, device=device), on_meta=False)
            where = str(device.type)
    finally:
        model.train(was_training)
    elapsed = time.perf_counter() - start
    flop_counts = counter.get_flop_counts()
    by_module = {k: sum(v.values()) // 2 for k, v in flop_counts.items() if k != "Global"}
    by_op = {str(op): n // 2 for op, n in flop_counts.get("Global", {}).items()}
    elementwise = _add_elementwise(records, by_module, by_op)
    return Cost(
        params=params,
        params_trainable=trainable,
        macs=counter.get_total_flops() // 2 + elementwise,
        input_shape=shape,
        counter=f"flop_counter[{where}]",
        count_s=elapsed,
        by_module=by_module,
        by_op=by_op,
        weight_bytes=traffic.weight_bytes,
        activation_bytes=traffic.activation_bytes,
    )


def count_macs(model: nn.Module, imgsz: int | tuple[int, int] = 224, batch: int = 1) -> int:
    """Shorthand: MACs of ``model.forward`` at ``imgsz``."""
    return count_cost(model, imgsz, batch).macs


def train_flops_per_image(model: nn.Module, imgsz: int | tuple[int, int]) -> int:
    """Model FLOPs of one training image: forward + backward = 3 x the forward FLOPs.

    This is the convention model-FLOPs utilisation (MFU) is quoted in. It is not
    ``FlopCounterMode`` over a real backward pass, whose formulas overcount grouped
    convolutions (19x the forward for ghostnetv3_100 at 32 px).
    """
    return 3 * 2 * count_macs(model, imgsz)


class MethodAsModule(nn.Module):
    """Expose ``model.<method>`` as ``forward`` so functional_call can run it."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.model, self.method)(x)


# ---------------------------------------------------------------------------------------
# Cross-check counters: the tools users usually reach for. Kept so a report can show
# where they disagree with the counter above; never used for decisions.


def macs_fvcore(model: nn.Module, imgsz: int | tuple[int, int] = 224, batch: int = 1) -> int | None:
    """fvcore's count (it calls its unit 'flops' but counts one per MAC). None if it fails."""
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return None
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    x = torch.randn(batch, 3, h, w, device=_device_of(model))
    was_training = model.training
    model.eval()
    try:
        with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
              contextlib.redirect_stderr(io.StringIO())):
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, x)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            return int(analysis.total())
    except Exception:
        return None
    finally:
        model.train(was_training)


def macs_thop(model: nn.Module, imgsz: int | tuple[int, int] = 224, batch: int = 1) -> int | None:
    """thop's MAC count (module hooks only: functional matmuls/attention are invisible)."""
    try:
        import copy

        import thop
    except ImportError:
        return None
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    probe = copy.deepcopy(model).eval()  # thop attaches buffers to the modules it visits
    x = torch.randn(batch, 3, h, w, device=_device_of(model))
    try:
        with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs, _ = thop.profile(probe, inputs=(x,), verbose=False)
        return int(macs)
    except Exception:
        return None


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
