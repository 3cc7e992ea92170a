"""Search overhead and efficiency, cost-only (no training), on this machine.

1. Per-trial overhead excluding training: sample + build + count + time a MobileViT
   candidate at 256 px (the study's own trial durations).
2. Search efficiency: hypervolume of the (latency down, MACs up) front under the
   budget after N trials, default sampler (TPE) vs random, same N and seeds.

    python benchmarks/search_overhead.py --trials 20 --seeds 0 1 --budget 30ms \
        --out benchmarks/results/search_overhead_cpu.md
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna
import torch

from nasbench.metrics.latency import device_name
from nasbench.nas import samplers
from nasbench.nas import study as st
from nasbench.nas.budget import parse_budget_ms
from nasbench.nas.space import resolve_space_arg
from report_out import emit  # benchmarks/ is on sys.path when a script runs


def hypervolume(points: list[tuple[float, float]], budget_ms: float, ref: float = 0.0, unit: float = 1e9) -> float:
    """Area dominated by (latency, value) points within [0, budget] x [ref, inf), in ms x
    value/unit (ms x GMACs by default)."""
    area, best = 0.0, ref
    for lat, value in sorted(points, key=lambda p: p[0]):
        if lat <= budget_ms and value > best:
            area += (budget_ms - lat) * (value - best) / unit
            best = value
    return area


def run(space_arg: str, sampler: str, seed: int, trials: int, budget_ms: float, storage: str):
    spaces = resolve_space_arg(space_arg)
    opts = st.SearchOptions(budget_ms=budget_ms, device="cpu", objective="macs", sampler=sampler, seed=seed)
    search = st.Search(spaces, opts)
    study = optuna.create_study(study_name=f"{sampler}-{seed}", storage=storage, direction="maximize",
                                sampler=samplers.make_sampler(sampler, seed))
    study.optimize(search, n_trials=trials)
    done = [t for t in study.trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    secs = [t.duration.total_seconds() for t in done]
    front = [(t.user_attrs["row"]["latency_ms"], t.user_attrs["row"]["macs"]) for t in done if t.user_attrs["feasible"]]
    return secs, hypervolume(front, budget_ms), len(front)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="mobilevit")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--budget", default="30ms")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = parse_budget_ms(args.budget)
    lines = [f"# Search overhead and efficiency (cost-only, {args.space}, budget {args.budget})\n",
             f"CPU: {device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, torch {torch.__version__}. "
             f"{args.trials} trials per run; trial time = sample + build + count + CPU timing (3 warm-up + 15 runs), "
             "no training. Hypervolume: area of the (latency <= budget, MACs) front, ms x GMACs, "
             "reference (budget, 0).\n",
             "| sampler | seed | median trial s | p90 trial s | feasible | hypervolume |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/bench.db"
        hv = {"tpe": [], "random": []}
        for seed in args.seeds:
            for sampler in ("tpe", "random"):
                secs, area, feasible = run(args.space, sampler, seed, args.trials, budget, storage)
                hv[sampler].append(area)
                p90 = sorted(secs)[int(0.9 * (len(secs) - 1))]
                lines.append(f"| {sampler} | {seed} | {statistics.median(secs):.2f} | {p90:.2f} "
                             f"| {feasible} | {area:.2f} |")
                print(lines[-1], flush=True)
    lines.append(f"\nMean hypervolume: TPE {statistics.fmean(hv['tpe']):.2f} "
                 f"vs random {statistics.fmean(hv['random']):.2f} "
                 f"(ratio {statistics.fmean(hv['tpe']) / max(statistics.fmean(hv['random']), 1e-9):.2f}).")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
