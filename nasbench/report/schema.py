"""The one result-row schema: every table, CSV and HTML report is built from these rows.

Column names carry their unit; values are plain numbers (never formatted strings), so a
CSV round-trips through pandas unchanged.
"""

from __future__ import annotations

COLUMNS: dict[str, str] = {
    "name": "model name (preset, config file stem, or factory name)",
    "family": "model family, or 'custom' for user factories",
    "source": "preset | config | factory | search",
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
}

# Subset shown in the terminal, in order, with display scaling: (column, header, scale, fmt).
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
]
