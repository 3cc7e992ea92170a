"""Each preset against its reference implementation (timm), both in deploy form, on this CPU.

Our deploy form is ``fuse_for_deploy``; timm's is ``timm.utils.reparameterize_model`` (its
conv+BN fusions and re-parameterised branches). Both models are timed by nasbench's timer
(``time_models``): each in its own clean child process, the two in alternating rounds, batch
1, fp32, at the preset's native size. Each preset runs in a fresh process of this script.
The training forms' parameter counts are checked equal first, so the two are the same network.

Needs timm (``pip download timm --no-deps``, unzip the wheel, put it on PYTHONPATH). timm
imports torchvision when it starts, for data transforms these models never call; where
torchvision cannot be imported, also put ``benchmarks/shim`` on PYTHONPATH (see its file):

    PYTHONPATH=/tmp/timm:benchmarks/shim python benchmarks/reference_latency.py \\
        --out benchmarks/results/reference_latency_cpu.md
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from fresh_process import ms_cell, ratio_fields, rows_or_one
from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import count_params
from nasbench.metrics.latency import TimingPlan, device_name, time_models
from report_out import emit

# our preset -> timm's name for the same network (Mobile-Former and HGNetV2-L have no timm twin)
TIMM_NAMES = {**{f"efficientvit_m{i}": f"efficientvit_m{i}" for i in range(6)},
              "mobilevit_xxs": "mobilevit_xxs", "mobilevit_s": "mobilevit_s", "mobilevitv2_100": "mobilevitv2_100",
              "ghostnetv3_100": "ghostnetv3_100", "volo_d1": "volo_d1_224"}
PLAN = TimingPlan(warmup=10, runs=100, rounds=10, time_limit_s=40.0)


def time_one(name: str, threads: int) -> dict:
    """Ours and timm's deploy forms of one preset, alternating; medians, spreads, processes."""
    import timm
    from timm.utils.model import reparameterize_model

    torch.manual_seed(0)
    ours, theirs = zoo.create(name), timm.create_model(TIMM_NAMES[name])
    params = {"ours": count_params(ours)[0], "timm": count_params(theirs)[0]}  # totals
    models = {"ours": fuse_for_deploy(ours).eval(), "timm": reparameterize_model(theirs.eval())}
    imgsz = zoo.resolve(name).native_imgsz
    timings = time_models(models, imgsz, device="cpu", threads=threads, plan=PLAN)
    # "timm_version", not "timm": ratio_fields puts timm's timing under "timm"
    return {"name": name, "timm_name": TIMM_NAMES[name], "imgsz": imgsz, "params": params,
            "timm_version": timm.__version__, **ratio_fields(timings, "ours", "timm")}


def table(rows: list[dict], threads: int) -> list[str]:
    lines = [
        "# Each preset against timm's implementation (both in deploy form) on the CPU", "",
        "Command: `PYTHONPATH=/tmp/timm:benchmarks/shim python benchmarks/reference_latency.py "
        "--out benchmarks/results/reference_latency_cpu.md`", "",
        f"Machine: {device_name(torch.device('cpu'))}, {threads} torch threads, torch {torch.__version__}, "
        f"timm {rows[0]['timm_version'] if rows else '?'}, Python {platform.python_version()}. Each preset in a fresh "
        f"process; each model in its own clean child process; batch 1, fp32, native size; {PLAN.rounds} alternating "
        f"rounds, up to {PLAN.runs} runs each after {PLAN.warmup} warm-up runs ({PLAN.time_limit_s:.0f} s a preset "
        "at most). Ratio: ours / timm's median (below 1: ours is faster).", "",
        "| preset | timm model | params (both) | ours ms (median, p10-p90) | timm ms (median, p10-p90) "
        "| ours / timm | timed in |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['timm_name']} | {r['params']['ours']:,} | {ms_cell(r['ours'])} "
                     f"| {ms_cell(r['timm'])} | {r['ratio']:.3f} | {r['ours']['process']} / {r['timm']['process']} |")
    at_most = sum(r["ratio"] <= 1.0 for r in rows)
    lines += ["", f"Ours at or below timm's median on {at_most} of {len(rows)} presets; highest ratio "
              f"{max(r['ratio'] for r in rows):.3f} ({max(rows, key=lambda r: r['ratio'])['name']})."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(TIMM_NAMES), choices=list(TIMM_NAMES))
    parser.add_argument("--out", type=Path, default=None)
    args, rows = rows_or_one(parser, lambda args: args.presets, time_one)
    if rows is None:
        return
    differ = [r["name"] for r in rows if r["params"]["ours"] != r["params"]["timm"]]
    if differ:
        raise SystemExit(f"parameter counts differ from timm's for {', '.join(differ)}: not the same networks")
    emit(table(rows, args.threads), args.out)


if __name__ == "__main__":
    main()
