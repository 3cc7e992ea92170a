"""Benchmark `nasbench report` on a synthetic study of many trials (default 1,000).

The study is written to a temporary SQLite file first (not timed), shaped like one
`nasbench search` leaves behind (see tests/report/synthetic.py). Then the report
command's work is timed in stages: open + load the study, derive the frames (Pareto
front, PED-ANOVA importances), render the HTML, write the three files. The target is
<= 10 s for 1,000 trials on a 2-core machine.

    python benchmarks/report_speed.py --trials 1000 --out benchmarks/results/report_speed.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.report.synthetic

import optuna  # noqa: E402

from nasbench.report.study import load_study_data  # noqa: E402
from nasbench.report.study_html import render_study_html, write_report_files  # noqa: E402
from nasbench.storage import open_study  # noqa: E402
from report_out import emit  # noqa: E402  benchmarks/ is on sys.path when a script runs
from tests.report.synthetic import make_study  # noqa: E402

TARGET_S = 10.0


def run_once(name: str, url: str, out_dir: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    study = open_study(name, url)
    study.get_trials(deepcopy=False)  # the storage read itself
    t1 = time.perf_counter()
    data = load_study_data(study)
    t2 = time.perf_counter()
    render_study_html(data)
    t3 = time.perf_counter()
    write_report_files(data, out_dir)  # renders again and writes (what the command does after loading)
    t4 = time.perf_counter()
    return {"open_s": t1 - t0, "frames_s": t2 - t1, "render_s": t3 - t2, "write_s": t4 - t3,
            "total_s": (t1 - t0) + (t2 - t1) + (t4 - t3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        make_study(args.trials, storage=url, name="bench")
        build_s = time.perf_counter() - t0
        runs = [run_once("bench", url, Path(tmp) / "report") for _ in range(args.repeats)]
        # The whole command in a fresh process: imports, terminal table, files.
        cmd = [sys.executable, "-c", "from nasbench.report.command import report; report.main()", "bench",
               "--storage", url, "--out", str(Path(tmp) / "cli")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        cli_s = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "report").iterdir()}
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    worst = max(r["total_s"] for r in runs)
    lines = [
        f"# `nasbench report` speed, synthetic study of {args.trials} trials",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, Python "
        f"{platform.python_version()}, optuna {optuna.__version__}. SQLite storage in a temp dir; building the "
        f"study took {build_s:.1f} s (not counted). Median of {args.repeats} runs.",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| open study + read trials (SQLite) | {med['open_s']:.2f} |",
        f"| frames, Pareto front, PED-ANOVA importances | {med['frames_s']:.2f} |",
        f"| render HTML | {med['render_s']:.2f} |",
        f"| render + write 3 files atomically | {med['write_s']:.2f} |",
        f"| **total (open + frames + render/write)** | **{med['total_s']:.2f}** "
        f"(worst {worst:.2f}; target <= {TARGET_S:g}) |",
        f"| `report` command in a fresh process (imports, table, files) | {cli_s:.2f} |",
        "",
        "Files: " + ", ".join(f"{n} {s / 1024:.0f} KiB" for n, s in sorted(sizes.items())),
    ]
    emit(lines, args.out)
    if max(worst, cli_s) > TARGET_S:
        sys.exit(f"slower than the {TARGET_S:g} s target")


if __name__ == "__main__":
    main()
