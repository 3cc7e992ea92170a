"""EfficientViT-M attention kernels on this CPU: SDPA with a float mask vs baddbmm + softmax + bmm.

Each preset runs in a fresh process (what ran before in a process changes timings); inside
it the same deploy-form model is timed with each kernel in alternating rounds
(``time_models``), batch 1, fp32, 224 px, after checking that both give the same logits.
The ratio is matmul / sdpa per preset: below 1 means the matmul kernel is faster. This is
what ``ATTENTION_KERNEL`` in ``nasbench/families/efficientvit.py`` was chosen from.

    python benchmarks/efficientvit_attention.py --out benchmarks/results/efficientvit_attention_cpu.md
"""

from __future__ import annotations

import argparse
import copy
import platform
from pathlib import Path

import torch

from fresh_process import ms_cell, ratio_fields, rows_or_one
from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.families.efficientvit import CascadedGroupAttention
from nasbench.metrics.latency import TimingPlan, device_name, time_models
from report_out import emit

PRESETS = tuple(f"efficientvit_m{i}" for i in range(6))
KERNELS = ("sdpa", "matmul")
PLAN = TimingPlan(warmup=10, runs=200, rounds=10, time_limit_s=240.0)


def with_kernel(model: torch.nn.Module, kernel: str) -> torch.nn.Module:
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, CascadedGroupAttention):
            m.kernel = kernel
    return out


def time_one(name: str, threads: int) -> dict:
    """Both kernels on one preset, alternating; returns medians, spreads and the max logit gap."""
    torch.manual_seed(0)
    base = zoo.create(name)
    with torch.no_grad():  # at init BN gammas of the attention's projection are 0: the kernels would not matter
        for m in base.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
            if isinstance(m, CascadedGroupAttention):
                m.attention_biases.normal_(0.0, 0.5)
    base = fuse_for_deploy(base).eval()
    models = {k: with_kernel(base, k) for k in KERNELS}
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        gap = float((models["sdpa"](x) - models["matmul"](x)).abs().max())
    timings = time_models(models, 224, device="cpu", threads=threads, plan=PLAN)
    return {"name": name, "max_abs_logit_gap": gap, **ratio_fields(timings, "matmul", "sdpa")}


def table(rows: list[dict], threads: int) -> list[str]:
    lines = [
        "# EfficientViT-M attention kernel on the CPU", "",
        "Command: `python benchmarks/efficientvit_attention.py "
        "--out benchmarks/results/efficientvit_attention_cpu.md`", "",
        f"Machine: {device_name(torch.device('cpu'))}, {threads} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}. Each preset in a fresh process; deploy form (BN folded), batch 1, "
        f"fp32, 224 px; the two kernels timed in {PLAN.rounds} alternating rounds, {PLAN.runs} runs each after "
        f"{PLAN.warmup} warm-up runs.", "",
        "| preset | sdpa ms (median, p10-p90) | matmul ms (median, p10-p90) | matmul / sdpa | max abs logit gap |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {ms_cell(r['sdpa'])} | {ms_cell(r['matmul'])} | {r['ratio']:.3f} | "
                     f"{r['max_abs_logit_gap']:.1e} |")
    faster = sum(r["ratio"] < 1 for r in rows)
    lines += ["", f"matmul faster on {faster} of {len(rows)} presets; median ratio "
              f"{sorted(r['ratio'] for r in rows)[len(rows) // 2]:.3f}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args, rows = rows_or_one(parser, lambda args: PRESETS, time_one)
    if rows is not None:
        emit(table(rows, args.threads), args.out)


if __name__ == "__main__":
    main()
