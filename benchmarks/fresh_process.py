"""One measurement per fresh process of a benchmark script: what ran before in a process can
change a timing by 20%. The script's hidden ``--one NAME`` option measures one item and prints
it as the last line of its output, in JSON; ``rows_or_one`` is that script's main loop."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping

from nasbench.metrics.latency import Timing


def timing_fields(t: Timing) -> dict:
    """The figures a benchmark row keeps of one timing."""
    return {"median_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "runs": t.runs,
            "process": t.process, "unstable": t.unstable_reason}


def ratio_fields(timings: Mapping[str, Timing], over: str, under: str) -> dict:
    """Each timing's figures and the ratio of their medians, ``over`` / ``under``."""
    fields = {k: timing_fields(t) for k, t in timings.items()}
    return {**fields, "ratio": fields[over]["median_ms"] / fields[under]["median_ms"]}


def ms_cell(fields: dict) -> str:
    """'median (p10-p90)' of one timing, in ms."""
    return f"{fields['median_ms']:.2f} ({fields['p10_ms']:.2f}-{fields['p90_ms']:.2f})"


def rows_or_one(parser: argparse.ArgumentParser, names: Callable[[argparse.Namespace], Iterable[str]],
                measure: Callable[[str, int], dict]) -> tuple[argparse.Namespace, list[dict] | None]:
    """Parse the script's arguments (``--threads`` and the hidden ``--one`` are added here). As
    ``--one NAME`` (a child): print ``measure(NAME, threads)`` and return no rows. Otherwise run
    this script once per name, each in a fresh process, and return their rows."""
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.threads)))
        return args, None
    rows = []
    for name in names(args):
        proc = subprocess.run([sys.executable, sys.argv[0], "--one", name, "--threads", str(args.threads)],
                              check=True, capture_output=True, text=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{name}: ratio {rows[-1]['ratio']:.3f}", file=sys.stderr)
    return args, rows
