"""Scale-out of cost-only search on this machine.

1. Throughput: finished trials per minute of `nasbench search --no-train` run as 1, 2, ...
   worker processes on one study (``--max-total`` shared, ``--threads 1`` each, so two
   workers on two cores is the fair comparison), plus one worker using every core.
   Wall time runs from starting the processes to the last one exiting, start-up included.
2. Per-trial overhead as a study grows: the time of a trial that is NOT building,
   counting or timing the model (sampler, storage reads/writes, duplicate lookup, slot
   claim, heartbeat), for trials near number 10 and near number 2,000 of one study. The
   2,000 earlier trials are real samples of the space with a copy of a real trial's
   attributes (measuring 2,000 models would take an hour; the overhead does not depend on
   the numbers in them).

    python benchmarks/scale.py --out benchmarks/results/scale_cpu.md
    python benchmarks/scale.py --storage postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import torch
import yaml

from nasbench.families.base import config_to_dict
from nasbench.metrics.latency import device_name
from nasbench.nas import samplers
from nasbench.nas import study as st
from nasbench.nas.space import parse_space, sample
from nasbench.nas.workers import CappedObjective, worker_id
from nasbench.storage import make_storage
from report_out import emit  # benchmarks/ is on sys.path when a script runs

# The shipped MobileViT space at 64 px: trials of about a second, so overheads show.
SPACE_OVERRIDES = {"imgsz": 64}


def space_file(tmp: Path) -> Path:
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "spaces" / "mobilevit.yaml").read_text())
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump({**base, **SPACE_OVERRIDES}))
    return path


def storage_for(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/{uuid.uuid4().hex[:6]}.db"
    if kind == "journal":
        return f"journal:{tmp}/{uuid.uuid4().hex[:6]}.log"
    return kind  # a database URL


def throughput(space: Path, storage: str, workers: int, threads: int, total: int, tmp: Path) -> float:
    """Finished trials per minute of ``workers`` processes sharing one study."""
    name = f"scale-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "nasbench.cli", "search", "--space", str(space), "--budget", "10s", "--no-train",
           "--no-presets", "--device", "cpu", "--threads", str(threads), "--study", name, "--storage", storage,
           "--trials", str(total), "--max-total", str(total), "--out", str(tmp / name)]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err[-500:]}")
    wall_s = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=make_storage(storage))
    done = sum(1 for t in study.trials if t.state.name in ("COMPLETE", "PRUNED"))
    assert done == total, (done, total)
    return done / wall_s * 60


class TimedSearch(st.Search):
    """The search objective, recording how long each trial spends measuring its model."""

    measure_s: float = 0.0

    def measure(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().measure(*args, **kwargs)
        finally:
            self.measure_s += time.perf_counter() - start


def fill_study(study: optuna.Study, space, template: dict, n: int) -> None:
    """``n`` finished trials with real samples of ``space`` and a real trial's attributes,
    written in one storage call each (a live trial commits every parameter separately)."""
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # in memory: only to sample
    frozen = []
    for _ in range(n):
        trial = scratch.ask()
        cand = sample(trial, space)
        user_attrs = {**template, "config": {"family": cand.family, **config_to_dict(cand.config)},
                      "config_key": uuid.uuid4().hex[:16]}
        value = float(template["row"]["macs"]) * random.uniform(0.5, 1.5)  # a spread for TPE to model
        frozen.append(optuna.trial.create_trial(
            params=trial.params, distributions=trial.distributions, value=value,
            user_attrs=user_attrs, system_attrs={"constraints:latency_over_budget_ms": -1.0}))
    study.add_trials(frozen)


def overhead_at(study: optuna.Study, search: TimedSearch, trials: int) -> list[float]:
    """Seconds outside model measurement of the next ``trials`` trials that built and timed
    a model (duplicates and never-built samples take other, shorter paths: skipped)."""
    objective = CappedObjective(search, 10**6)
    out = []
    while len(out) < trials:
        search.measure_s = 0.0
        start = time.perf_counter()
        study.optimize(objective, n_trials=1, gc_after_trial=False)
        elapsed = time.perf_counter() - start
        if search.measure_s > 0:
            out.append(elapsed - search.measure_s)
    return out


def overhead(space_path: Path, storage: str, big: int, trials: int) -> tuple[list[float], list[float]]:
    space = parse_space(yaml.safe_load(space_path.read_text()), str(space_path), "mobilevit")
    search = TimedSearch([space], st.SearchOptions(budget_ms=10_000, device="cpu", objective="macs", threads=1))
    study = optuna.create_study(study_name=f"ovh-{uuid.uuid4().hex[:8]}", storage=make_storage(storage),
                                sampler=samplers.make_sampler("tpe", 0), direction="maximize")
    study.optimize(search, n_trials=10)  # trials 0-9: real
    small = overhead_at(study, search, trials)
    template = {k: study.trials[0].user_attrs[k] for k in ("row", "name", "feasible", "worker", "constraint")}
    random.seed(0)
    fill_study(study, space, template, big - len(study.trials))
    large = overhead_at(study, search, trials)
    return small, large


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", default="sqlite", help="sqlite, journal, or a database URL")
    ap.add_argument("--total", type=int, default=24, help="finished trials per throughput run")
    ap.add_argument("--big", type=int, default=2000, help="study size for the late overhead figure")
    ap.add_argument("--trials", type=int, default=10, help="trials timed for each overhead figure")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        space = space_file(tmp)
        lines = [f"# Scale-out, cost-only search ({args.storage} storage)\n",
                 f"CPU: {device_name(torch.device('cpu'))}, {cores} cores, torch {torch.__version__}, "
                 f"optuna {optuna.__version__}. Space: spaces/mobilevit.yaml at 64 px; each trial samples, builds, "
                 f"counts and times (3 warm-up + 15 runs) one model. Worker: {worker_id()} host.\n",
                 "## Throughput\n", "| workers | threads each | finished trials | trials/min | vs 1 worker |",
                 "|---|---|---|---|---|"]
        runs = [(1, 1)] + [(w, 1) for w in range(2, cores + 1)] + ([(1, cores)] if cores > 1 else [])
        base = None
        for workers, threads in runs:
            rate = throughput(space, storage_for(args.storage, tmp), workers, threads, args.total, tmp)
            base = base or rate
            lines.append(f"| {workers} | {threads} | {args.total} | {rate:.1f} | {rate / base:.2f}x |")
            print(lines[-1], flush=True)
        small, large = overhead(space, storage_for(args.storage, tmp), args.big, args.trials)
        ms = lambda xs: f"{statistics.median(xs) * 1e3:.0f} ms (p90 {sorted(xs)[int(0.9 * (len(xs) - 1))] * 1e3:.0f})"  # noqa: E731
        lines += ["\n## Per-trial overhead (trial time minus build/count/timing)\n",
                  "| trials already in the study | overhead per trial, median (p90) |", "|---|---|",
                  f"| 10 | {ms(small)} |", f"| {args.big} | {ms(large)} |",
                  f"\nRatio at {args.big} vs 10: {statistics.median(large) / statistics.median(small):.1f}x.",
                  "\nCommand: `python benchmarks/scale.py " + " ".join(sys.argv[1:]) + "`"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
