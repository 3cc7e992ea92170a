"""Side-by-side measurement of models: names -> result rows (a pandas DataFrame).

The flow is one-way: resolve every name first (bad names fail before any work), build,
fold to the deploy form, count cost, time all models in alternating rounds, then emit
one row per model in the schema of ``nasbench.report.schema``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from nasbench import zoo
from nasbench.detector import measure as det
from nasbench.device import resolve_device
from nasbench.errors import UserError, first_line
from nasbench.families.base import config_to_dict, fuse_for_deploy
from nasbench.metrics.cost import Cost, count_cost, count_params, macs_fvcore, macs_thop
from nasbench.metrics.latency import (
    DTYPES,
    Timing,
    TimingPlan,
    check_cuda_graph,
    time_models,
    torch_settings,
)
from nasbench.metrics.roofline import Peaks, device_peaks, peaks_line, roofline_columns

Log = Callable[[str], None]


@dataclass(frozen=True)
class CompareOptions:
    imgsz: int | None = None  # None: each model's native size
    batch: int = 1
    device: str = "auto"
    dtype: str = "fp32"
    channels_last: bool = False
    threads: int | None = None
    fuse: bool = True
    crosscheck: bool = True  # fvcore / thop columns
    plan: TimingPlan = field(default_factory=TimingPlan)
    detector: bool = False  # also measure each backbone inside RT-DETR, with an rtdetr_l row
    det_imgsz: int = 640
    estimator: str | None = None  # add est_* columns from this accuracy estimator ("default" = the validated one)
    backend: str = "eager"  # runtime the backbones are timed on (nasbench.metrics.backends); detectors stay eager
    roofline: bool = True  # bound_ms and latency_vs_bound columns (the device's peaks measured once, cached)
    refresh_peaks: bool = False  # measure the device's peak rates again instead of reading the cache
    cuda_graph: bool = False  # also time CUDA-graph replay of each forward (latency_graph_* columns)


@dataclass
class Candidate:
    """A model being compared: its label, spec, built module and measurements."""

    label: str
    spec: zoo.ModelSpec
    model: nn.Module
    imgsz: int
    params_train_form: int
    deploy_form: bool
    cost: Cost | None = None


def unique_labels(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    labels = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        labels.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return labels


def resolve_model(name: str) -> zoo.ModelSpec:
    """A MODEL argument -> spec; ``rtdetr_l`` is the reference detector (HGNetv2-L backbone)."""
    return det.resolve(name)


def has_fusable_parts(model: nn.Module) -> bool:
    return any(m is not model and callable(getattr(m, "fuse", None)) for m in model.modules())


def prepare(spec: zoo.ModelSpec, label: str, opts: CompareOptions) -> Candidate:
    """Build a model and fold it to its deploy form (unless asked not to)."""
    model = spec.build()
    params_train_form, _ = count_params(model)
    deploy = opts.fuse and has_fusable_parts(model)
    if deploy:
        fuse_for_deploy(model)
    imgsz = opts.imgsz or spec.native_imgsz or 224
    return Candidate(label, spec, model.eval(), imgsz, params_train_form, deploy)


def measure_cost(cand: Candidate) -> Cost:
    try:
        return count_cost(cand.model, cand.imgsz)
    except UserError:
        raise
    except Exception as exc:  # a user model that cannot take this input
        line = first_line(exc)
        raise UserError(f"model '{cand.label}' failed on a 1x3x{cand.imgsz}x{cand.imgsz} input: {line}") from None


def published_columns(cand: Candidate) -> dict:
    """The published ImageNet top-1 of a preset (empty for anything else)."""
    from nasbench.estimate import published_for

    record = published_for(cand.spec.name) if cand.spec.source == "preset" else None
    return {} if record is None else {"published_top1": record.top1, "published_imgsz": record.imgsz}


def estimate_columns(cand: Candidate, estimator: str, log: Log) -> dict:
    """est_* columns of one candidate: a freshly built (training-form) copy of it is estimated."""
    from nasbench.estimate import estimate_spec, get_estimator, typical_error_points

    chosen = get_estimator(estimator)
    log(f"estimating {cand.label} ({chosen.name})")
    if cand.spec.name == det.BASELINE:
        return {"estimator": chosen.name}  # the detector yardstick is not a classifier
    try:
        result = estimate_spec(cand.spec, cand.imgsz, chosen)
    except UserError:
        raise
    except Exception as exc:  # a user model the scores cannot run (no logits, odd outputs)
        line = first_line(exc)
        raise UserError(f"cannot estimate '{cand.label}' with {chosen.name}: {line}") from None
    zoo_family = cand.spec.family if cand.spec.config is not None else None
    return {"estimator": result.estimator, "est_top1": result.top1,
            "est_error_points": typical_error_points(chosen, zoo_family),
            "est_score": None if result.calibrated else result.value, "est_seconds": result.seconds}


def model_configs(candidates: list[Candidate]) -> dict[str, dict]:
    """Label -> ``family`` + knobs of every zoo model (presets, config files): the YAML `compare` reads back.

    User factories have no config, and the rtdetr_l baseline is not a family of the zoo.
    """
    return {c.label: {"family": c.spec.family, **config_to_dict(c.spec.config)} for c in candidates
            if c.spec.config is not None and c.spec.source in ("preset", "config")}


def peaks_for(device: torch.device, dtype: str, threads: int | None, refresh: bool, log: Log) -> Peaks:
    """The device's peak rates at the thread count the models were timed with (cached per machine)."""
    log("reading this device's peak FLOP/s and bandwidth (measured once, then cached)")
    with torch_settings(threads):
        return device_peaks(device, dtype, refresh)


def result_row(cand: Candidate, timing: Timing, batch: int, peaks: Peaks | None) -> dict:
    """The measured columns of one model, as compare and the search both write them."""
    assert cand.cost is not None
    row = {
        "name": cand.label, "family": cand.spec.family, "source": cand.spec.source, "imgsz": cand.imgsz,
        "batch": batch, "params": cand.cost.params, "params_train_form": cand.params_train_form,
        "macs": cand.cost.macs, "flops": cand.cost.flops, "latency_ms": timing.median_ms,
        "latency_p10_ms": timing.p10_ms, "latency_p90_ms": timing.p90_ms, "latency_runs": timing.runs,
        "peak_mem_mb": None if timing.peak_mem_bytes is None else timing.peak_mem_bytes / 2**20,
        "deploy_form": cand.deploy_form, "device": timing.device, "device_name": timing.device_name,
        "dtype": timing.dtype, "threads": timing.threads, "torch_version": timing.torch_version,
        "cuda_version": timing.cuda_version, "time_limited": timing.time_limited, "counter": cand.cost.counter,
        "backend": timing.backend, "backend_error": timing.error, "backend_max_abs_diff": timing.backend_max_abs_diff,
        "backend_setup_s": timing.backend_setup_s, "latency_spread": timing.spread,
        "other_load_cores": timing.other_load_cores, "faults_per_run": timing.faults_per_run,
        "timing_unstable": timing.unstable, "timing_note": timing.unstable_reason, "allocator": timing.allocator,
        "timing_process": timing.process,
    }
    if timing.graph_median_ms is not None or timing.graph_error:
        row.update(latency_graph_ms=timing.graph_median_ms, latency_graph_p10_ms=timing.graph_p10_ms,
                   latency_graph_p90_ms=timing.graph_p90_ms, graph_error=timing.graph_error)
    if peaks is not None:
        row.update(roofline_columns(cand.cost, batch, DTYPES[timing.dtype].itemsize, peaks, timing.median_ms),
                   peak_gflops=peaks.flops_per_s / 1e9, peak_gbytes_per_s=peaks.bytes_per_s / 1e9)
    return row


@dataclass(frozen=True)
class RunContext:
    """What a comparison's rows do not hold: how it was timed, its wall time and the configs."""

    timing_what: str  # what was timed and how, one line
    warmup_runs: int
    runs_asked: int
    time_limit_s: float | None
    wall_s: float
    configs: dict[str, dict]  # label -> family + knobs of each zoo model, for the report's config blocks
    peaks_what: str | None = None  # the roofline peaks used, when measured
    det_timing_what: str | None = None  # the detector timing, with --detector


@dataclass(frozen=True)
class Comparison:
    frame: pd.DataFrame  # one row per model, in the order given: the CSV's columns
    run: RunContext


def compare_models(names: list[str | zoo.ModelSpec], opts: CompareOptions, log: Log = lambda s: None) -> Comparison:
    """Measure every named (or already resolved) model; one DataFrame row each, in the order given."""
    started_s = time.monotonic()
    if not names:
        raise UserError("name at least one model (run `nasbench models` for the list)")
    specs = [n if isinstance(n, zoo.ModelSpec) else resolve_model(n) for n in names]  # bad names fail here
    if opts.detector and not any(det.is_baseline(s) for s in specs):
        specs.append(det.baseline_spec())  # the Δ columns need the reference row
    device = resolve_device(opts.device)
    check_cuda_graph(opts.cuda_graph, device, opts.backend)  # before anything is built
    candidates = build_candidates(specs, opts, log)
    if opts.detector:  # built (and bad backbones rejected) before anything is timed
        det_opts = det.DetectorOptions(imgsz=opts.det_imgsz, batch=opts.batch, device=device, dtype=opts.dtype,
                                       channels_last=opts.channels_last, threads=opts.threads, fuse=opts.fuse,
                                       thop=opts.crosscheck, plan=opts.plan)
        dets, baseline_label = det.build_detectors({c.label: c.spec for c in candidates}, det_opts, log)
    crosscheck = crosscheck_columns(candidates, opts.crosscheck, log)
    timings = time_candidates(candidates, device, opts, log)
    peaks = peaks_for(device, opts.dtype, opts.threads, opts.refresh_peaks, log) if opts.roofline else None
    detectors = det.time_detectors(dets, baseline_label, det_opts, log) if opts.detector else None
    estimates = {c.label: estimate_columns(c, opts.estimator, log) for c in candidates} if opts.estimator else {}
    rows = [{**result_row(c, timings[c.label], opts.batch, peaks), **crosscheck[c.label],
             **(detectors.rows[c.label] if detectors else {}), **published_columns(c), **estimates.get(c.label, {})}
            for c in candidates]
    frame = pd.DataFrame(rows)
    for col in ("macs_fvcore", "macs_thop", "det_macs_thop_x2"):
        if col in frame.columns:
            frame[col] = frame[col].astype("Int64")  # integers that may be missing
    run = RunContext(timing_what=next(iter(timings.values())).what, warmup_runs=opts.plan.warmup,
                     runs_asked=opts.plan.runs, time_limit_s=opts.plan.time_limit_s,
                     wall_s=time.monotonic() - started_s, configs=model_configs(candidates),
                     peaks_what=peaks_line(peaks) if peaks is not None else None,
                     det_timing_what=detectors.what if detectors else None)
    return Comparison(frame, run)


def build_candidates(specs: list[zoo.ModelSpec], opts: CompareOptions, log: Log) -> list[Candidate]:
    """Every model built, folded and counted (a model that cannot be built fails here, before any timing)."""
    candidates = []
    for spec, label in zip(specs, unique_labels([s.name for s in specs])):
        log(f"building {label}")
        cand = prepare(spec, label, opts)
        cand.cost = measure_cost(cand)
        candidates.append(cand)
    return candidates


def crosscheck_columns(candidates: list[Candidate], enabled: bool, log: Log) -> dict[str, dict]:
    """fvcore's and thop's MAC counts of each model (None when disabled or when they fail)."""
    columns = {}
    for c in candidates:
        if enabled:
            log(f"cross-checking {c.label} with fvcore and thop")
        columns[c.label] = {"macs_fvcore": macs_fvcore(c.model, c.imgsz) if enabled else None,
                            "macs_thop": macs_thop(c.model, c.imgsz) if enabled else None}
    return columns


def time_candidates(candidates: list[Candidate], device: torch.device, opts: CompareOptions,
                    log: Log) -> dict[str, Timing]:
    """All models timed together in alternating rounds on the chosen backend."""
    log(f"timing {len(candidates)} model(s) on {device}, {opts.backend} (alternating rounds)")
    try:
        return time_models({c.label: c.model for c in candidates}, {c.label: c.imgsz for c in candidates},
                           batch=opts.batch, device=device, dtype=opts.dtype, channels_last=opts.channels_last,
                           threads=opts.threads, plan=opts.plan, backend=opts.backend, cuda_graph=opts.cuda_graph)
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"out of GPU memory at batch {opts.batch}; try a smaller --batch or --imgsz") from None
    except RuntimeError as exc:
        raise UserError(f"timing failed on {device} with dtype {opts.dtype}: {first_line(exc)}") from None
