"""Does a model's latency depend on what ran before it in the process? Before and after.

For each model, every situation of ``latency_scenario.py`` (alone in a compare, after the
fvcore/thop cross-check, first or last among other models, inside a search trial, and
``torch.utils.benchmark.Timer`` in a fresh process with glibc's default heap and with the
heap kept as nasbench keeps it) runs in a fresh process, in rounds: every round runs every
(version, model, situation) once, in a shuffled order, so this machine's drift (two speed
regimes 1.5x apart with 2 threads, switching every few seconds) hits all of them alike.
Each figure is divided by the same round's ``timer_kept`` figure of the same model and
version, and the median of those ratios over the rounds is reported.

Each ``--versions NAME=REF`` is the code at that git ref, checked out into a temporary git
worktree and put first on PYTHONPATH, so editing the checkout while this runs changes nothing.

    python benchmarks/latency_consistency.py --versions before=<commit> after=HEAD --rounds 4 \
        --out benchmarks/results/latency_consistency_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_out import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "benchmarks" / "latency_scenario.py"
SITUATIONS = ("alone", "crosscheck", "first", "last", "trial", "timer", "timer_kept", "forked_last")
REFERENCE = "timer_kept"
OTHERS = {"mobilevit_xxs": ["efficientvit_m0", "ghostnetv3_100"], "efficientvit_m0": ["mobilevit_xxs",
          "ghostnetv3_100"], "ghostnetv3_100": ["mobilevit_xxs", "efficientvit_m0"]}


def run_one(code: Path, situation: str, model: str, threads: int) -> dict:
    others = OTHERS.get(model, ["mobilevit_xxs", "efficientvit_m0"])
    env = dict(os.environ, PYTHONPATH=str(code), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, str(SCENARIO), situation, model, "--threads", str(threads),
                          "--others", *others], capture_output=True, text=True, env=env, cwd=code, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{situation} {model} failed in {code}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="nasbench-before-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True)
    return path


def collect(versions: dict[str, Path], models: list[str], rounds: int, threads: int, log,
            partial: Path | None = None, situations: tuple[str, ...] = SITUATIONS) -> dict:
    """results[version][model][situation] = list of per-round medians (ms); each finished round
    is also written to ``partial`` (a run cut short keeps its rounds)."""
    results = {v: {m: {s: [] for s in situations} for m in models} for v in versions}
    rng = random.Random(0)
    for r in range(rounds):
        jobs = [(v, m, s) for v in versions for m in models for s in situations]
        rng.shuffle(jobs)
        done = {}
        for v, m, s in jobs:
            done[v, m, s] = run_one(versions[v], s, m, threads)["median_ms"]
        for (v, m, s), ms in done.items():
            results[v][m][s].append(ms)
        if partial is not None:
            partial.write_text(json.dumps(results))
        log(f"round {r + 1}/{rounds} done")
    return results


def ratios(per_round: dict[str, list[float]]) -> dict[str, tuple[float, float, float]]:
    """situation -> (median, min, max) over rounds of its ratio to the same round's reference."""
    ref = per_round[REFERENCE]
    out = {}
    for s, values in per_round.items():
        r = [v / ref[i] for i, v in enumerate(values)]
        out[s] = (statistics.median(r), min(r), max(r))
    return out


def table(results: dict, models: list[str], situations: tuple[str, ...] = SITUATIONS) -> list[str]:
    lines = ["| model | code | " + " | ".join(situations) + " | worst of compare/trial vs timer_kept |",
             "|---|---|" + "---:|" * (len(situations) + 1)]
    for m in models:
        for v in results:
            rs = ratios(results[v][m])
            cells = [f"{rs[s][0]:.3f} ({rs[s][1]:.2f}-{rs[s][2]:.2f})" for s in situations]
            worst = max(abs(rs[s][0] - 1) for s in ("alone", "crosscheck", "first", "last", "trial") if s in rs)
            ref_ms = statistics.median(results[v][m][REFERENCE])
            lines.append(f"| {m} ({ref_ms:.2f} ms) | {v} | " + " | ".join(cells) + f" | {100 * worst:.1f}% |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", required=True, metavar="NAME=REF",
                        help="the code to compare, e.g. before=<commit> after=HEAD")
    parser.add_argument("--models", nargs="+", default=["mobilevit_xxs", "efficientvit_m0", "ghostnetv3_100"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--partial", type=Path, default=None, help="JSON of the rounds finished so far")
    parser.add_argument("--situations", nargs="+", choices=SITUATIONS, default=list(SITUATIONS),
                        help=f"which to run ({REFERENCE} always runs: it is the reference)")
    args = parser.parse_args()
    situations = tuple(dict.fromkeys([*args.situations, REFERENCE]))
    started = time.monotonic()
    refs = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], capture_output=True,
                                 text=True, check=True).stdout.strip()
            for name, ref in (v.split("=", 1) for v in args.versions)}
    versions = {name: worktree(ref) for name, ref in refs.items()}
    try:
        results = collect(versions, args.models, args.rounds, args.threads,
                          lambda s: print(s, file=sys.stderr, flush=True), args.partial, situations)
    finally:
        for path in versions.values():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
    import torch

    from nasbench.metrics.latency import device_name

    lines = ["# Latency consistency: the same model, whatever ran before it", "",
             "Command: `python benchmarks/latency_consistency.py --versions "
             f"{' '.join(f'{n}={r}' for n, r in refs.items())} "
             f"--rounds {args.rounds} --situations {' '.join(situations)} "
             f"--threads {args.threads}{f' --out {args.out}' if args.out else ''}` "
             f"({(time.monotonic() - started) / 60:.0f} min).", "",
             f"Machine: {device_name(torch.device('cpu'))}, {os.cpu_count()} cores, torch "
             f"{torch.__version__}, Python {platform.python_version()}; {args.threads} torch thread(s).", "",
             "Each cell: the median over rounds of (this situation's median latency) / (the same round's "
             f"`{REFERENCE}` median of the same model and code), with the smallest and largest ratio of the "
             "rounds; the reference's own latency is in the model column. Every figure is a fresh process. "
             "`timer` is `torch.utils.benchmark.Timer` with glibc's default heap, `timer_kept` with the heap kept "
             "as nasbench keeps it (mmap and trim off); the others are nasbench's own code paths (see "
             "benchmarks/latency_scenario.py).", "",
             *table(results, args.models, situations), "",
             "Raw per-round medians (ms): " + json.dumps(results), ""]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
