"""Detector-level comparison: a backbone inside RT-DETR, measured next to rtdetr-l.

For each backbone this builds ``build_rtdetr(backbone)`` (the rtdetr-l neck and decoder
on the backbone's three deepest levels, whatever their strides: EfficientViT's are
16/32/64), folds it to the deploy form, and measures

- ``det_params`` / ``det_params_train_form``: parameters after / before folding;
- ``det_macs`` (our counter, ``count_cost``, at ``det_imgsz``) and ``det_flops`` = 2 x MACs;
- ``det_macs_thop_x2``: thop's MACs x 2, the "GFLOPs" Ultralytics prints (its
  ``get_flops`` is thop x 2). thop sees module hooks only, so it misses attention
  matmuls and ``grid_sample`` but counts BN/LayerNorm; it is a cross-check, not a basis;
- latency (median, p10, p90) of the whole detector,

and the same for the reference detector ``rtdetr_l`` (HGNetv2-L + the same head), timed
in the SAME alternating run on the same device, so the ``*_delta_pct`` columns
(100 x (value / rtdetr_l's - 1)) compare like with like.

What counts as the detector: zoo backbones are built with ``num_classes=0`` and every
backbone module that ``forward()`` runs but ``forward_features()`` never does (the
classifier, GhostNetV3's 1x1 head conv, Mobile-Former's head, VOLO's class-attention
layers) is removed: a detector never runs them. User factories get the same removal.
Ultralytics' rtdetr-l has no classifier either, so the Δ columns are like for like. (The
seed article's MobileViT-S swap kept its unused 1000-class classifier in its count.)

On a CPU a 640-px detector forward takes seconds, so timing is capped there (at most
1 warm-up and 5 timed runs per detector, 60 s for all of them; fewer when asked) and
the output says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nasbench import zoo
from nasbench.detector.rtdetr import NUM_LEVELS, RTDETR, build_rtdetr, check_level_sizes, rtdetr_l
from nasbench.device import resolve_device
from nasbench.errors import UserError, first_line
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import Cost, MethodAsModule, count_cost, count_params, macs_thop
from nasbench.metrics.latency import Timing, TimingPlan, time_models

Log = Callable[[str], None]

BASELINE = "rtdetr_l"
BASELINE_FAMILY = "rtdetr"
BASELINE_SOURCE = "baseline"
DETECTOR_IMGSZ = 640  # rtdetr-l's COCO input size
DETECTOR_CLASSES = 80
# What a CPU may spend on 640-px detector forwards (seconds each on a laptop-class CPU).
CPU_PLAN_CAP = TimingPlan(warmup=1, runs=5, rounds=5, time_limit_s=60.0)


# ----------------------------------------------------------------------------- names
def baseline_spec() -> zoo.ModelSpec:
    """``rtdetr_l`` as a model name is the whole detector (HGNetv2-L + the rtdetr-l head, 80
    classes, 32,970,476 params) at 640 px, in every table; its backbone alone is ``hgnetv2_l``."""
    return zoo.ModelSpec(BASELINE, BASELINE_FAMILY, None, BASELINE_SOURCE, DETECTOR_IMGSZ,
                         factory=lambda: rtdetr_l(DETECTOR_CLASSES))


def is_baseline(spec: zoo.ModelSpec) -> bool:
    return spec.family == BASELINE_FAMILY and spec.source == BASELINE_SOURCE


def resolve(name: str) -> zoo.ModelSpec:
    """``zoo.resolve`` that also knows ``rtdetr_l``."""
    return baseline_spec() if name == BASELINE else zoo.resolve(name)


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class DetectorOptions:
    imgsz: int = DETECTOR_IMGSZ
    num_classes: int = DETECTOR_CLASSES  # rtdetr-l's COCO head, for every detector alike
    batch: int = 1
    device: str | torch.device = "auto"
    dtype: str = "fp32"
    channels_last: bool = False
    threads: int | None = None
    fuse: bool = True
    thop: bool = True
    plan: TimingPlan = field(default_factory=TimingPlan)


def detector_plan(plan: TimingPlan, device: torch.device) -> tuple[TimingPlan, bool]:
    """The plan used for detectors, and whether the CPU cap lowered it."""
    if device.type != "cpu":
        return plan, False
    capped = replace(
        plan,
        warmup=min(plan.warmup, CPU_PLAN_CAP.warmup),
        runs=min(plan.runs, CPU_PLAN_CAP.runs),
        rounds=min(plan.rounds, CPU_PLAN_CAP.rounds),
        time_limit_s=min(plan.time_limit_s, CPU_PLAN_CAP.time_limit_s),
    )
    return capped, capped != plan


def describe_plan(plan: TimingPlan, capped: bool) -> str:
    text = (f"{plan.warmup} warm-up + up to {plan.runs} timed run(s) per detector, "
            f"{plan.time_limit_s:g} s for all detectors together")
    if capped:
        text += (f" (CPU cap: at most {CPU_PLAN_CAP.warmup} warm-up / {CPU_PLAN_CAP.runs} runs / "
                 f"{CPU_PLAN_CAP.time_limit_s:g} s, detector forwards are slow on a CPU; use a GPU for tight figures)")
    return text


# ----------------------------------------------------------------------------- backbone checks
def _run_recording(model: nn.Module, method: str, imgsz: int) -> tuple[Any, set[str]]:
    """Run ``model.<method>`` on a 1x3ximgszximgsz input; return its output and the names of
    the modules whose ``forward`` ran. Shape-only on ``meta`` when possible (no compute,
    weights untouched), else a real CPU/GPU forward."""
    names = {id(m): n for n, m in model.named_modules()}
    called: set[str] = set()
    hooks = [m.register_forward_pre_hook(lambda mod, args: called.add(names[id(mod)])) for m in model.modules()]
    wrapper = MethodAsModule(model, method)
    try:
        try:
            state = {n: torch.empty_like(t, device="meta") for n, t in
                     [*wrapper.named_parameters(remove_duplicate=False),
                      *wrapper.named_buffers(remove_duplicate=False)]}
            out = functional_call(wrapper, state, (torch.empty(1, 3, imgsz, imgsz, device="meta"),), strict=False)
        except UserError:
            raise
        except Exception:  # code that reads values or makes tensors on a fixed device: run it for real
            called.clear()
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            with torch.inference_mode():
                out = wrapper(torch.randn(1, 3, imgsz, imgsz, device=device))
    finally:
        for h in hooks:
            h.remove()
    return out, called


def probe_levels(backbone: nn.Module, label: str, imgsz: int) -> tuple[list[tuple[int, int, int]], set[str]]:
    """(C, H, W) of every level ``forward_features`` returns, and the modules it runs."""
    model_was_training = backbone.training
    backbone.eval()
    try:
        levels, called = _run_recording(backbone, "forward_features", imgsz)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model '{label}': forward_features failed on a 1x3x{imgsz}x{imgsz} input: "
                        f"{type(exc).__name__}: {first_line(exc, '(no message)')}") from None
    finally:
        backbone.train(model_was_training)
    if not isinstance(levels, (list, tuple)) or not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in levels):
        raise UserError(f"model '{label}': forward_features must return a list of [B, C, H, W] tensors, "
                        f"got {type(levels).__name__}")
    return [(int(t.shape[1]), int(t.shape[2]), int(t.shape[3])) for t in levels], called


def check_levels(label: str, shapes: Sequence[tuple[int, int, int]], declared_channels: Sequence[int]) -> None:
    """Raise a one-line ``UserError`` unless the last three levels can feed the RT-DETR head."""
    if len(shapes) < NUM_LEVELS:
        raise UserError(f"model '{label}': forward_features returned {len(shapes)} level(s); "
                        f"RT-DETR needs {NUM_LEVELS} (P3, P4, P5)")
    last = list(shapes[-NUM_LEVELS:])
    sizes = [(h, w) for _, h, w in last]
    if any(b[0] >= a[0] or b[1] >= a[1] for a, b in zip(sizes, sizes[1:])):
        raise UserError(f"model '{label}': feature level sizes {sizes} do not decrease from level to level; "
                        "RT-DETR needs its three levels deepest last, each half the size of the previous")
    channels = tuple(c for c, _, _ in last)
    if channels != tuple(declared_channels)[-NUM_LEVELS:]:
        raise UserError(f"model '{label}': forward_features gives channels {channels} but out_channels declares "
                        f"{tuple(declared_channels)[-NUM_LEVELS:]}")
    try:
        check_level_sizes([torch.empty(1, c, h, w, device="meta") for c, h, w in last])
    except UserError as exc:
        raise UserError(f"model '{label}': {exc}") from None


def classification_only_modules(backbone: nn.Module, feature_modules: set[str], imgsz: int) -> list[str]:
    """Largest submodules with parameters that ``forward()`` runs and ``forward_features()``
    never does (classifier heads and the like). Empty when ``forward()`` cannot be probed."""
    try:
        _, forward_modules = _run_recording(backbone.eval(), "forward", imgsz)
    except Exception:  # a backbone whose classifier cannot take this size: keep everything
        return []
    feature_side, forward_side = _with_ancestors(feature_modules), _with_ancestors(forward_modules)
    found: list[str] = []
    for name, module in backbone.named_modules():
        if not name or any(name.startswith(f + ".") for f in found):
            continue
        if name in forward_side and name not in feature_side and count_params(module)[0] > 0:
            found.append(name)
    return found


def _with_ancestors(names: set[str]) -> set[str]:
    """The names and every dotted prefix of them (a module 'contains' what ran inside it)."""
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def remove_modules(model: nn.Module, names: Sequence[str]) -> int:
    """Replace each named submodule by ``nn.Identity``; return the parameters removed."""
    before = count_params(model)[0]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, nn.Identity())
    return before - count_params(model)[0]


def require_backbone_interface(model: nn.Module, label: str) -> None:
    """One-line ``UserError`` unless ``model`` speaks the Backbone interface the head needs
    (checked here, not by attribute access, so e.g. a bare nn.Conv2d's int ``out_channels``
    gives a message rather than a TypeError)."""
    what = type(model).__name__
    problem = None
    if not callable(getattr(model, "forward_features", None)):
        problem = f"{what} has no forward_features()"
    else:
        for attr in ("out_channels", "out_strides"):
            value = getattr(model, attr, None)
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v > 0 for v in value):
                problem = f"{what}.{attr} must be a tuple of positive ints per level, got {value!r}"
                break
    if problem:
        raise UserError(f"model '{label}' cannot be an RT-DETR backbone: {problem} "
                        "(see nasbench.families.base.Backbone)")


def backbone_for_detector(spec: zoo.ModelSpec) -> nn.Module:
    """Zoo backbones without their classifier (``num_classes=0``); user factories as built."""
    return spec.build() if spec.factory is not None else spec.build(num_classes=0)


# ----------------------------------------------------------------------------- one detector
@dataclass
class Detector:
    label: str
    model: RTDETR
    strides: tuple[int, ...]
    params_train_form: int
    removed_params: int
    deploy_form: bool
    cost: Cost
    macs_thop: int | None


def build_detector(spec: zoo.ModelSpec, label: str, opts: DetectorOptions) -> Detector:
    """RT-DETR on ``spec``'s backbone (or rtdetr-l itself), checked, folded and counted."""
    if is_baseline(spec):
        model, removed = rtdetr_l(opts.num_classes), 0
    else:
        backbone = backbone_for_detector(spec)
        require_backbone_interface(backbone, label)
        try:
            model = build_rtdetr(backbone, opts.num_classes)  # checks forward_features/out_channels/out_strides
        except UserError as exc:
            raise UserError(f"model '{label}' cannot be an RT-DETR backbone: {exc}") from None
        shapes, feature_modules = probe_levels(backbone, label, opts.imgsz)
        check_levels(label, shapes, backbone.out_channels)
        removed = remove_modules(backbone, classification_only_modules(backbone, feature_modules, opts.imgsz))
    params_train_form, _ = count_params(model)
    if opts.fuse:
        fuse_for_deploy(model)
    model.eval()
    try:
        cost = count_cost(model, opts.imgsz)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model '{label}' inside RT-DETR failed on a 1x3x{opts.imgsz}x{opts.imgsz} input: "
                        f"{first_line(exc, '(no message)')}") from None
    thop = macs_thop(model, opts.imgsz) if opts.thop else None
    strides = tuple(model.backbone.out_strides)[-NUM_LEVELS:]
    return Detector(label, model, strides, params_train_form, removed, opts.fuse, cost, thop)


def detector_columns(det: Detector, timing: Timing, imgsz: int, num_classes: int) -> dict[str, Any]:
    """The ``det_*`` result-row columns of one detector (no Δ columns)."""
    return {
        "det_imgsz": imgsz,
        "det_num_classes": num_classes,
        "det_strides": "/".join(str(s) for s in det.strides),
        "det_params": det.cost.params,
        "det_params_train_form": det.params_train_form,
        "det_removed_params": det.removed_params,
        "det_macs": det.cost.macs,
        "det_flops": det.cost.flops,
        "det_macs_thop_x2": None if det.macs_thop is None else 2 * det.macs_thop,
        "det_latency_ms": timing.median_ms,
        "det_latency_p10_ms": timing.p10_ms,
        "det_latency_p90_ms": timing.p90_ms,
        "det_latency_runs": timing.runs,
        "det_peak_mem_mb": None if timing.peak_mem_bytes is None else timing.peak_mem_bytes / 2**20,
        "det_time_limited": timing.time_limited,
        "det_deploy_form": det.deploy_form,
    }


DELTA_COLUMNS = {"det_params_delta_pct": "det_params", "det_macs_delta_pct": "det_macs",
                 "det_latency_delta_pct": "det_latency_ms"}


def delta_pct(value: float, reference: float) -> float:
    """100 x (value / reference - 1): + means bigger/slower than the reference."""
    return 100.0 * (float(value) / float(reference) - 1.0)


def add_deltas(rows: Mapping[str, dict[str, Any]], baseline_label: str) -> None:
    """Fill the Δ-vs-baseline columns of every row in place (the baseline's are 0)."""
    base = rows[baseline_label]
    for row in rows.values():
        for delta_col, col in DELTA_COLUMNS.items():
            row[delta_col] = delta_pct(row[col], base[col])


# ----------------------------------------------------------------------------- many detectors
@dataclass
class DetectorResults:
    rows: dict[str, dict[str, Any]]  # label -> det_* columns, Δ included
    baseline_label: str
    what: str  # one line: what was timed and how


def _time(dets: Sequence[Detector], opts: DetectorOptions, device: torch.device) -> tuple[dict[str, Timing], str]:
    plan, capped = detector_plan(opts.plan, device)
    try:
        timings = time_models({d.label: d.model for d in dets}, opts.imgsz, batch=opts.batch, device=device,
                              dtype=opts.dtype, channels_last=opts.channels_last, threads=opts.threads, plan=plan)
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"out of GPU memory timing detectors at {opts.imgsz} px, batch {opts.batch}; "
                        "try a smaller --det-imgsz or --batch") from None
    except RuntimeError as exc:
        why = first_line(exc, "(no message)")
        raise UserError(f"detector timing failed on {device} with dtype {opts.dtype}: {why}") from None
    first = next(iter(timings.values()))
    what = (f"RT-DETR (rtdetr-l neck + decoder, {opts.num_classes} classes) at {opts.imgsz} px: {first.what}; "
            + describe_plan(plan, capped))
    return timings, what


def build_detectors(specs: Mapping[str, zoo.ModelSpec], opts: DetectorOptions,
                    log: Log = lambda s: None) -> tuple[list[Detector], str]:
    """Build, check and count every detector; returns them and the reference's label.

    ``specs`` maps row labels to specs; the first ``rtdetr_l`` spec among them is the
    reference, else one is added under the label ``rtdetr_l``. Bad backbones fail here,
    before anything is timed.
    """
    specs = dict(specs)
    baseline_label = next((label for label, s in specs.items() if is_baseline(s)), None)
    if baseline_label is None:
        baseline_label = BASELINE if BASELINE not in specs else f"{BASELINE} (reference)"
        specs[baseline_label] = baseline_spec()
    dets = []
    for label, spec in specs.items():
        log(f"building RT-DETR on {label} ({opts.imgsz} px)")
        dets.append(build_detector(spec, label, opts))
    return dets, baseline_label


def time_detectors(dets: Sequence[Detector], baseline_label: str, opts: DetectorOptions,
                   log: Log = lambda s: None) -> DetectorResults:
    """Time all detectors in one alternating run; rows with the Δ-vs-reference columns."""
    device = opts.device if isinstance(opts.device, torch.device) else resolve_device(opts.device)
    log(f"timing {len(dets)} detector(s) on {device} at {opts.imgsz} px (alternating rounds)")
    timings, what = _time(dets, opts, device)
    rows = {d.label: detector_columns(d, timings[d.label], opts.imgsz, opts.num_classes) for d in dets}
    add_deltas(rows, baseline_label)
    return DetectorResults(rows, baseline_label, what)


def measure_detectors(specs: Mapping[str, zoo.ModelSpec], opts: DetectorOptions,
                      log: Log = lambda s: None) -> DetectorResults:
    """Every backbone in RT-DETR plus the rtdetr_l reference, timed together; rows with Δ."""
    dets, baseline_label = build_detectors(specs, opts, log)
    return time_detectors(dets, baseline_label, opts, log)


def detector_cost_and_latency(spec: zoo.ModelSpec, label: str, imgsz: int = 640,
                              device: str | torch.device = "auto", dtype: str = "fp32",
                              plan: TimingPlan | None = None) -> dict[str, Any]:
    """The ``det_*`` columns of one backbone's detector, timed alone (no Δ columns).

    For callers that measure one candidate at a time (the search); comparisons should use
    ``measure_detectors`` so the reference is timed in the same run.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    opts = DetectorOptions(imgsz=imgsz, device=dev, dtype=dtype, thop=False, plan=plan or TimingPlan())
    det = build_detector(spec, label, opts)
    timings, _ = _time([det], opts, dev)
    return detector_columns(det, timings[label], imgsz, opts.num_classes)


__all__ = [
    "BASELINE", "DetectorOptions", "DetectorResults", "Detector", "baseline_spec", "is_baseline", "resolve",
    "build_detector", "build_detectors", "time_detectors", "measure_detectors", "detector_cost_and_latency",
    "delta_pct", "add_deltas",
    "check_levels", "probe_levels", "detector_plan",
]
