"""The one result-row schema: every table, CSV and HTML report is built from these rows.

Column names carry their unit; values are plain numbers (never formatted strings), so a
CSV round-trips through pandas unchanged.
"""

from __future__ import annotations

COLUMNS: dict[str, str] = {
    "name": "model name (preset, config file stem, or factory name)",
    "family": "model family, or 'custom' for user factories",
    "source": "preset | config | factory | search | baseline (rtdetr_l)",
    "imgsz": "input height = width, pixels",
    "batch": "batch size used for timing (cost columns are per image, batch 1)",
    "params": "parameters of the measured (deploy) form",
    "params_train_form": "parameters before BN folding / re-parameterisation",
    "macs": "multiply-accumulates per image, nasbench counter (sees attention)",
    "flops": "2 x macs",
    "macs_fvcore": "fvcore's count (it says 'flops', counts MACs; skips SDPA) — cross-check",
    "macs_thop": "thop's count (module hooks only: misses functional matmuls) — cross-check",
    "latency_ms": "median forward latency, milliseconds",
    "latency_p10_ms": "10th percentile latency, milliseconds",
    "latency_p90_ms": "90th percentile latency, milliseconds",
    "latency_runs": "timed runs behind the latency figures",
    "peak_mem_mb": "CUDA peak allocated memory during forward, MiB (empty on CPU)",
    "deploy_form": "True when BN/re-param branches were folded before measuring",
    "device": "cpu | cuda",
    "device_name": "CPU model or GPU name",
    "dtype": "fp32 | fp16 | bf16",
    "threads": "torch intra-op threads",
    "torch_version": "torch version",
    "cuda_version": "CUDA version (empty on CPU)",
    "time_limited": "True when the time limit cut the number of timed runs",
    "counter": "how macs were counted",
    "backend": "runtime the latency was measured on: eager | compile | onnxruntime | tensorrt",
    "backend_error": "why the backend could not run this model (its latency columns are then empty)",
    "backend_max_abs_diff": "largest |output - eager output| on the timed input (checked before timing)",
    "backend_setup_s": "export / compile / engine-build seconds (not part of the latency)",
    "latency_spread": "(p90 - p10) / median of the timed runs",
    "other_load_cores": "CPU cores' worth of time other processes used while this model was timed (/proc/stat)",
    "faults_per_run": "minor page faults of the process per timed run (0 = steady heap; CPU only)",
    "timing_unstable": "True when spread or other processes' load says the latency is not to be trusted",
    "timing_note": "why timing_unstable is set",
    "timing_attempts": "search: every timing of a candidate that was re-timed because it was unstable",
    "allocator": "how host memory was kept during timing (glibc heap kept: no page faults from history)",
    "timing_process": ("isolated: timed in its own child of a clean fork server (nothing run before can change "
                       "the figure; CPU eager); shared: in this process, with the reason when isolation was wanted"),
    "latency_graph_ms": "median latency of the same forward replayed from a CUDA graph (--cuda-graph), ms: "
                        "latency_ms minus this is what kernel launches cost",
    "latency_graph_p10_ms": "10th percentile CUDA-graph latency, ms",
    "latency_graph_p90_ms": "90th percentile CUDA-graph latency, ms",
    "graph_error": "why the forward could not be captured in a CUDA graph (its eager figures stand)",
    "bytes_moved": "bytes eager execution reads and writes per forward at this batch (every op's tensors once)",
    "bound_ms": "roofline lower bound, ms: max(FLOPs / peak FLOP/s, bytes_moved / peak bandwidth) of this device",
    "bound_by": "which roof binds: compute | memory",
    "latency_vs_bound": "latency_ms / bound_ms (>= 1; ~1: at the hardware's roof, >> 1: overhead-bound)",
    "peak_gflops": "this device's peak matmul rate in the timed dtype and thread count, GFLOP/s (measured)",
    "peak_gbytes_per_s": "this device's peak copy bandwidth (read + write), GB/s (measured)",
    "published_top1": "published ImageNet-1k top-1 of the preset, % (the family module names the source)",
    "published_imgsz": "eval resolution of published_top1, pixels",
    "estimator": "accuracy estimator behind est_top1 / est_score (compare --estimate)",
    "est_top1": "estimated ImageNet-1k top-1, % (calibrated estimators; out of sample for zoo families)",
    "est_error_points": "typical error of est_top1, points: the estimator's mean abs. error on models its fit never "
                        "saw (leave-one-family-out for zoo families; held-out classic ImageNet models for others)",
    "est_score": "estimator score, higher = better (estimators that only rank)",
    "est_seconds": "seconds the estimate took",
    # Detector columns (`compare --detector`, `baseline`): the backbone inside RT-DETR
    # (rtdetr-l neck + decoder) on its three deepest levels; rtdetr_l = the reference.
    "det_imgsz": "detector input height = width, pixels",
    "det_num_classes": "classes of the detector head (80 = COCO, like rtdetr-l)",
    "det_strides": "strides of the three backbone levels the detector uses, e.g. 8/16/32",
    "det_params": "parameters of the whole detector, deploy form (backbone without its classification-only modules)",
    "det_params_train_form": "detector parameters before BN folding / RepConv merging (what Ultralytics prints)",
    "det_removed_params": "backbone parameters left out of the detector: modules forward() runs and "
                          "forward_features() never does (classifier heads)",
    "det_macs": "multiply-accumulates per image of the whole detector at det_imgsz, nasbench counter",
    "det_flops": "2 x det_macs",
    "det_macs_thop_x2": "thop MACs x 2 of the detector's deploy form at det_imgsz: the 'GFLOPs' convention of "
                        "Ultralytics (misses attention matmuls and grid_sample, counts BN/LayerNorm) — cross-check",
    "det_latency_ms": "median latency of the whole detector at det_imgsz, milliseconds (timed in one "
                      "alternating run with rtdetr_l)",
    "det_latency_p10_ms": "10th percentile detector latency, milliseconds",
    "det_latency_p90_ms": "90th percentile detector latency, milliseconds",
    "det_latency_runs": "timed runs behind the detector latency figures",
    "det_peak_mem_mb": "CUDA peak allocated memory during the detector forward, MiB (empty on CPU)",
    "det_time_limited": "True when the time limit cut the number of detector runs",
    "det_deploy_form": "True when the detector was folded (BN, RepConv) before measuring",
    "det_params_delta_pct": "det_params vs rtdetr_l's, % (100 x (value / rtdetr_l - 1); + = bigger)",
    "det_macs_delta_pct": "det_macs vs rtdetr_l's, % (same for FLOPs)",
    "det_latency_delta_pct": "det_latency_ms vs rtdetr_l's from the same run, % (+ = slower)",
}

# The backbone columns shown in the terminal (and the compare page), in order, with display
# scaling: (column, header, scale, fmt). Detector columns have their own table below.
TERMINAL_COLUMNS: list[tuple[str, str, float, str]] = [
    ("name", "model", 1, "{}"),
    ("family", "family", 1, "{}"),
    ("imgsz", "imgsz px", 1, "{:d}"),
    ("params_train_form", "params M (train form)", 1e-6, "{:.3f}"),
    ("params", "params M (deploy)", 1e-6, "{:.3f}"),
    ("macs", "MACs G", 1e-9, "{:.3f}"),
    ("flops", "FLOPs G (2×MACs)", 1e-9, "{:.3f}"),
    ("macs_fvcore", "fvcore MACs G", 1e-9, "{:.3f}"),
    ("macs_thop", "thop MACs G", 1e-9, "{:.3f}"),
    ("latency_ms", "latency ms (median)", 1, "{:.2f}"),
    ("latency_p10_ms", "p10 ms", 1, "{:.2f}"),
    ("latency_p90_ms", "p90 ms", 1, "{:.2f}"),
    ("latency_graph_ms", "CUDA graph ms", 1, "{:.2f}"),
    ("bound_ms", "bound ms", 1, "{:.2f}"),
    ("latency_vs_bound", "× bound", 1, "{:.1f}"),
    ("published_top1", "published top-1 %", 1, "{:.1f}"),
    ("est_top1", "est. top-1 %", 1, "{:.1f}"),
    ("est_error_points", "± est. error", 1, "{:.1f}"),
    ("est_score", "est. score", 1, "{:.4g}"),
]  # + the det_* columns below, appended (tables show only the columns a frame has)

# The detector table of `compare --detector` / `baseline` (a second terminal table: one
# table with both would not fit a terminal); the HTML shows these det_* columns in its one table.
DETECTOR_TERMINAL_COLUMNS: list[tuple[str, str, float, str]] = [
    ("name", "model", 1, "{}"),
    ("family", "family", 1, "{}"),
    ("det_strides", "level strides", 1, "{}"),
    ("det_params", "det params M", 1e-6, "{:.2f}"),
    ("det_params_delta_pct", "Δ params %", 1, "{:+.1f}"),
    ("det_flops", "det FLOPs G (2×MACs)", 1e-9, "{:.1f}"),
    ("det_macs_delta_pct", "Δ MACs %", 1, "{:+.1f}"),
    ("det_macs_thop_x2", "det thop×2 G (Ultralytics)", 1e-9, "{:.1f}"),
    ("det_latency_ms", "det latency ms (median)", 1, "{:.1f}"),
    ("det_latency_p10_ms", "det p10 ms", 1, "{:.1f}"),
    ("det_latency_p90_ms", "det p90 ms", 1, "{:.1f}"),
    ("det_latency_delta_pct", "Δ latency %", 1, "{:+.1f}"),
]

# Columns a study adds to the result-row schema (documentation next to the name).
STUDY_COLUMNS: dict[str, str] = {
    "trial": "Optuna trial number",
    "state": "complete | pruned | failed | running | waiting",
    "feasible": ("True when every constraint held (latency_ms <= budget, params/MACs caps); "
                 "False also when never measured"),
    "pareto": "True for trials on the Pareto front (latency_ms lower, objective higher)",
    "value": "Optuna objective value: est_value (estimate studies), proxy_top1 in % (proxy) or macs (cost-only)",
    "est_value": "the estimator's value for this trial: est_top1 when calibrated, else est_score",
    "proxy_top1": "top-1 accuracy on the proxy task, % (see the report's methodology: may be synthetic data)",
    "proxy_top5": "top-5 accuracy on the proxy task, %",
    "proxy_val_loss": "validation cross-entropy on the proxy task, nats",
    "proxy_images_per_s": "proxy training throughput, images per second",
    "det_params": "parameters of the whole RT-DETR detector built on this backbone",
    "det_macs": "multiply-accumulates per image of the whole detector at det_imgsz",
    "det_flops": "2 x det_macs",
    "det_latency_ms": "median latency of the whole detector at det_imgsz, milliseconds",
    "duplicate_of": "trial number whose measurements were reused (same config sampled again)",
    "start": "'preset': a named preset projected onto the space, enqueued first; 'aimed': its width-scaled "
             "version aimed at the budget (see aim_round); empty: proposed by the sampler",
    "preset": "the named preset a start trial was projected from",
    "aimed_from": "the preset an aimed trial was scaled from",
    "aim_round": "1: aimed from its preset in proportion to MACs; 2: the round-1 version, timed outside 0.8-1.0 "
                 "of the budget, aimed again along the latency-MACs slope of the two timings",
    "pred_latency_ms": "latency predicted by the study's online latency model before the trial was timed, ms",
    "pred_latency_error": "|pred_latency_ms - latency_ms| / latency_ms, for trials predicted and then timed",
    "predicted_over_timed": "predicted over budget but timed anyway (every 4th such candidate), to check the model",
    "predicted_over": "skipped: the latency model put it over the budget even at the optimistic end of its "
                      "error, so it was never timed (reason has the prediction); it completes infeasible with "
                      "the predicted latency, never built unless the objective is an estimate",
    "duration_s": "wall time of the trial, seconds",
    "started_at": "trial start time, ISO 8601 (the storage's clock)",
    "reason": "why the trial is infeasible, pruned or failed",
}
KNOB_PREFIX = "knob_"
KNOB_DOC = "config knob of the candidate (list values written as JSON)"


def column_doc(column: str) -> str:
    if column.startswith(KNOB_PREFIX):
        return KNOB_DOC
    return COLUMNS.get(column) or STUDY_COLUMNS.get(column, "")
