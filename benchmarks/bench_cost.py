"""Benchmark the measuring tool itself: build, count and time every preset.

For each preset (or the ones named): wall time to build it, to count params+MACs with
nasbench's meta-device counter, with fvcore and with thop (same model, same input, same
run), and its CPU latency. Prints a markdown table and writes it with --out.

    python benchmarks/bench_cost.py --families mobilevit mobilevitv2 --out benchmarks/results/cost_cpu.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from nasbench import zoo
from nasbench.families.base import fuse_for_deploy
from nasbench.metrics.cost import count_cost, macs_fvcore, macs_thop
from nasbench.metrics.latency import TimingPlan, device_name, time_models
from report_out import emit  # benchmarks/ is on sys.path when a script runs


def timed(fn, repeats: int = 1):
    """(result of the last call, median seconds over ``repeats`` calls)."""
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return out, statistics.median(seconds)


def bench_preset(name: str, latency: bool, plan: TimingPlan) -> dict:
    spec = zoo.resolve(name)
    model, build_s = timed(lambda: fuse_for_deploy(spec.build()))
    size = spec.native_imgsz or 224
    cost, ours_s = timed(lambda: count_cost(model, size), repeats=3)
    fv, fv_s = timed(lambda: macs_fvcore(model, size))
    th, th_s = timed(lambda: macs_thop(model, size))
    row = dict(name=name, imgsz=size, params=cost.params, macs=cost.macs, macs_fvcore=fv, macs_thop=th,
               build_s=build_s, count_s=ours_s, fvcore_s=fv_s, thop_s=th_s)
    if latency:
        t = time_models({name: model}, size, device="cpu", plan=plan)[name]
        row.update(latency_ms=t.median_ms, p10_ms=t.p10_ms, p90_ms=t.p90_ms)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="presets (default: every preset of --families)")
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    names = args.names or [n for n, (f, _) in zoo.all_presets().items()
                           if args.families is None or f.name in args.families]
    plan = TimingPlan(warmup=3, runs=args.runs, rounds=4, time_limit_s=30)
    rows = []
    for n in names:
        rows.append(bench_preset(n, not args.no_latency, plan))
        r = rows[-1]
        print(f"{n}: count {r['count_s'] * 1e3:.0f} ms "
              f"(fvcore {r['fvcore_s'] * 1e3:.0f} ms, thop {r['thop_s'] * 1e3:.0f} ms)", flush=True)

    def g(v):
        return "—" if v is None else f"{v / 1e9:.3f}"

    lines = [
        "# Cost counting and CPU latency per preset\n",
        f"Machine: {device_name(torch.device('cpu'))}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}. Deploy form (BN folded). "
        "Count times are the median of 3 calls per preset.\n",
        "| preset | px | params M | MACs G (ours) | fvcore G | thop G | build s | count ms (ours) | fvcore ms "
        "| thop ms | fvcore/ours time | latency ms (p10–p90) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = f"{r['latency_ms']:.1f} ({r['p10_ms']:.1f}–{r['p90_ms']:.1f})" if "latency_ms" in r else "—"
        lines.append(
            f"| {r['name']} | {r['imgsz']} | {r['params'] / 1e6:.3f} | {g(r['macs'])} "
            f"| {g(r['macs_fvcore'])} | {g(r['macs_thop'])} "
            f"| {r['build_s']:.2f} | {r['count_s'] * 1e3:.0f} | {r['fvcore_s'] * 1e3:.0f} | {r['thop_s'] * 1e3:.0f} "
            f"| {r['fvcore_s'] / r['count_s']:.1f}x | {lat} |"
        )
    emit(lines, args.out)


if __name__ == "__main__":
    main()
