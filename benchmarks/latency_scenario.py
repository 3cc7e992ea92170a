"""One timing of one model in one situation, in a fresh process: the unit of
``latency_consistency.py``. Prints one JSON line: {"median_ms": ..., "faults_per_run": ...}.

    python benchmarks/latency_scenario.py SCENARIO MODEL --threads 1 [--others A B]

Scenarios (what ran in the process before the model was timed):
- alone:       ``nasbench.compare([MODEL], crosscheck=False)``
- crosscheck:  ``nasbench.compare([MODEL])`` (fvcore and thop run first)
- first/last:  ``nasbench.compare`` with MODEL first / last among MODEL and --others
- trial:       the search's own measure path, after an accuracy estimate of another model
               (what a search trial has in its history: the previous trial's scores)
- timer:       ``torch.utils.benchmark.Timer`` on the deploy-form model, nothing else
- timer_kept:  the same, with the host heap kept as nasbench keeps it (steady_heap)
- forked_last: as ``last`` (--others compared first, with the cross-check), then MODEL timed
               by ``nasbench.compare`` in a child forked from a fork server started before any
               of that work: does a clean process image, not a fresh interpreter, undo history?

Whichever ``nasbench`` is first on PYTHONPATH is measured (the consistency benchmark points
it at a checkout of the code before the change for its "before" column).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import resource


def timer_ms(model_name: str, threads: int, keep_heap: bool) -> float:
    import torch
    from torch.utils.benchmark import Timer

    from nasbench import zoo
    from nasbench.families.base import fuse_for_deploy

    if keep_heap:  # what nasbench.metrics.latency.steady_heap does, here so the "before" code gets it too
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap'd blocks
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: never give the heap top back
    torch.set_num_threads(threads)
    spec = zoo.resolve(model_name)
    model = fuse_for_deploy(spec.build()).eval()
    x = torch.randn(1, 3, spec.native_imgsz, spec.native_imgsz)
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        measured = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads).blocked_autorange(
            min_run_time=3.0)
    return measured.median * 1e3


def compare_ms(names: list[str], target: str, threads: int, crosscheck: bool) -> float:
    import nasbench

    frame = nasbench.compare(names, device="cpu", threads=threads, crosscheck=crosscheck)
    return float(frame.set_index("name").loc[target, "latency_ms"])


def trial_ms(model_name: str, other: str, threads: int) -> float:
    from nasbench import zoo
    from nasbench.estimate import estimate_spec, get_estimator
    from nasbench.nas.space import resolve_space_arg
    from nasbench.nas.study import Search, SearchOptions

    spec = zoo.resolve(other)
    estimate_spec(spec, spec.native_imgsz, get_estimator("default"))  # the previous trial's scores
    target = zoo.resolve(model_name)
    search = Search(resolve_space_arg(target.family), SearchOptions(budget_ms=1e6, device="cpu", threads=threads,
                                                                    objective="macs"))
    row, _rejected = search.measure(target, model_name, target.native_imgsz)
    return float(row["latency_ms"])


def _child(names: list[str], target: str, threads: int, queue) -> None:
    queue.put(compare_ms(names, target, threads, crosscheck=False))


def forked_last_ms(model: str, others: list[str], threads: int) -> float:
    import multiprocessing
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "nasbench", "nasbench.comparison"])
    forkserver.ensure_running()  # forked now: its heap has seen imports only
    compare_ms([*others, model], model, threads, crosscheck=True)  # the history, in this process
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=([model], model, threads, queue))
    child.start()
    ms = queue.get()
    child.join()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["alone", "crosscheck", "first", "last", "trial", "timer", "timer_kept",
                                                 "forked_last"])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--others", nargs="*", default=[])
    args = parser.parse_args()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if args.scenario in ("timer", "timer_kept"):
        ms = timer_ms(args.model, args.threads, args.scenario == "timer_kept")
    elif args.scenario == "forked_last":
        ms = forked_last_ms(args.model, args.others, args.threads)
    elif args.scenario == "trial":
        ms = trial_ms(args.model, args.others[0], args.threads)
    else:
        names = {"alone": [args.model], "crosscheck": [args.model], "first": [args.model, *args.others],
                 "last": [*args.others, args.model]}[args.scenario]
        ms = compare_ms(names, args.model, args.threads, crosscheck=args.scenario != "alone")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    print(json.dumps({"median_ms": ms, "process_faults": faults}))


if __name__ == "__main__":
    main()
