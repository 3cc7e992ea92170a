"""Every preset on every CPU backend: eager vs torch.compile vs ONNX Runtime, against the bound.

Each preset runs in a fresh process: built in its deploy form, put on each backend
(``nasbench.metrics.backends.prepare``: exported or compiled, output checked against eager),
then the three forwards are timed together in alternating rounds (eager, compile, ORT,
eager, ...), so this machine's drift hits them alike. Beside them: the roofline bound of
the row (``nasbench.metrics.roofline``, this machine's peaks at the same thread count) and
each latency / bound, which must never be below 1.

    python benchmarks/backends.py --out benchmarks/results/backends_cpu.md [--presets a b] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_out import emit  # noqa: E402

CPU_BACKENDS = ("eager", "compile", "onnxruntime")


class _Call(nn.Module):
    """A prepared backend forward as a module, so nasbench's timer can alternate between them."""

    def __init__(self, call) -> None:
        super().__init__()
        self.call = call

    def forward(self, x):
        return self.call()


def one_preset(name: str, threads: int, runs: int) -> dict:
    from nasbench import zoo
    from nasbench.families.base import fuse_for_deploy
    from nasbench.metrics import backends
    from nasbench.metrics.cost import count_cost
    from nasbench.metrics.latency import TimingPlan, time_models, torch_settings
    from nasbench.metrics.roofline import bound_of, device_peaks

    torch.manual_seed(0)
    spec = zoo.resolve(name)
    model = fuse_for_deploy(spec.build()).eval()
    size = spec.native_imgsz
    cost = count_cost(model, size)
    x = torch.randn(1, 3, size, size)
    out: dict = {"name": name, "imgsz": size, "macs": cost.macs, "errors": {}, "setup_s": {}, "max_abs_diff": {}}
    calls = {}
    with torch_settings(threads):
        for backend in CPU_BACKENDS:
            try:
                prepared = backends.prepare(backend, model, x, threads)
            except backends.BackendError as exc:
                out["errors"][backend] = str(exc)
                continue
            calls[backend] = _Call(prepared.call)
            out["setup_s"][backend] = prepared.setup_s
            out["max_abs_diff"][backend] = prepared.max_abs_diff
        peaks = device_peaks(torch.device("cpu"), "fp32")
    timings = time_models(calls, size, threads=threads,
                          plan=TimingPlan(warmup=5, runs=runs, rounds=5, time_limit_s=90.0))
    bound = bound_of(cost, 1, 4, peaks)
    out.update(bound_ms=bound.ms, bound_by=bound.limited_by, peak_gflops=peaks.flops_per_s / 1e9,
               peak_gbps=peaks.bytes_per_s / 1e9,
               timings={b: {"median_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "runs": t.runs,
                            "unstable": t.unstable_reason} for b, t in timings.items()})
    return out


def run_all(presets: list[str], threads: int, runs: int, log) -> list[dict]:
    rows = []
    for name in presets:
        log(f"{name} ...")
        started = time.monotonic()
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--threads", str(threads), "--runs", str(runs)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            rows.append({"name": name, "failed": (proc.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        log(f"{name}: {time.monotonic() - started:.0f} s")
    return rows


def _cell(row: dict, backend: str) -> str:
    if backend in row["errors"]:
        return "— (" + row["errors"][backend].split(":")[0] + ")"
    t = row["timings"][backend]
    return f"{t['median_ms']:.2f} ({t['p10_ms']:.2f}-{t['p90_ms']:.2f}){' !' if t['unstable'] else ''}"


def table(rows: list[dict]) -> list[str]:
    lines = ["| preset | px | GMACs | eager ms (p10-p90) | compile ms | onnxruntime ms | fastest vs eager | bound ms "
             "(by) | eager / bound | compile / bound | ORT / bound | compile, ORT setup s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "failed" in row:
            lines.append(f"| {row['name']} | failed: {row['failed']} |" + " |" * 10)
            continue
        t = row["timings"]
        eager = t["eager"]["median_ms"]
        others = {b: t[b]["median_ms"] for b in ("compile", "onnxruntime") if b in t}
        best = min(others, key=others.get) if others else None
        fastest = f"{best} {eager / others[best]:.2f}x" if best else "—"
        ratios = [f"{t[b]['median_ms'] / row['bound_ms']:.2f}" if b in t else "—" for b in CPU_BACKENDS]
        setup = ", ".join(f"{row['setup_s'].get(b, float('nan')):.0f}" for b in ("compile", "onnxruntime"))
        lines.append(f"| {row['name']} | {row['imgsz']} | {row['macs'] / 1e9:.3f} | "
                     + " | ".join(_cell(row, b) for b in CPU_BACKENDS)
                     + f" | {fastest} | {row['bound_ms']:.2f} ({row['bound_by']}) | " + " | ".join(ratios)
                     + f" | {setup} |")
    return lines


def summary(rows: list[dict]) -> list[str]:
    done = [r for r in rows if "failed" not in r]
    faster = [r["name"] for r in done if any(
        b in r["timings"] and r["timings"][b]["median_ms"] < r["timings"]["eager"]["median_ms"]
        for b in ("compile", "onnxruntime"))]
    ratios = [(r["timings"][b]["median_ms"] / r["bound_ms"], r["name"], b) for r in done for b in r["timings"]]
    low = min(ratios) if ratios else (float("nan"), "—", "—")
    errors = [f"{r['name']} ({b}: {e})" for r in done for b, e in r["errors"].items()]
    return [f"- compile or ONNX Runtime faster than eager: {len(faster)} of {len(done)} presets.",
            f"- smallest latency / bound: {low[0]:.2f} ({low[1]}, {low[2]}); "
            + ("every ratio >= 1." if low[0] >= 1 else "**a latency below its bound: a bug in the bound.**"),
            f"- backend failures: {'; '.join(errors) if errors else 'none'}."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_preset(args.one, args.threads, args.runs)))
        return
    from nasbench import zoo

    started = time.monotonic()
    presets = args.presets or [n for n in zoo.all_presets()]
    rows = run_all(presets, args.threads, args.runs, lambda s: print(s, file=sys.stderr, flush=True))
    peak = next((r for r in rows if "failed" not in r), {})
    import onnxruntime

    from nasbench.metrics.latency import device_name

    lines = ["# Backends on this CPU: eager vs torch.compile vs ONNX Runtime, against the roofline bound", "",
             f"Command: `python benchmarks/backends.py --threads {args.threads} --runs {args.runs}"
             f"{f' --out {args.out}' if args.out else ''}` ({(time.monotonic() - started) / 60:.0f} min).", "",
             f"Machine: {device_name(torch.device('cpu'))}, {args.threads} threads, torch {torch.__version__}"
             f", onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}; roofs measured here: "
             f"{peak.get('peak_gflops', float('nan')):.0f} GFLOP/s fp32 (best of a matmul and two convolutions), "
             f"{peak.get('peak_gbps', float('nan')):.0f} GB/s copy.", "",
             "Batch 1, fp32, deploy form, native resolution; each preset in a fresh process; the three backends "
             "timed together in 5 alternating rounds (median, p10-p90 of the timed runs; `!` = flagged unstable). "
             "Setup (compile, export + session) is not in the latency.", "",
             *summary(rows), "", *table(rows), ""]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
