"""Proxy-trial time with intermediate evaluations on a probe subset vs on the whole val set.

A search trial trains for ``--steps`` and evaluates ``--evals`` times; only the last
evaluation gives the objective, the others steer pruning. The search scores those on
``PROBE_VAL_IMAGES`` class-balanced val images (``probe_val``); the obvious alternative,
measured here in the same process and interleaved, scores every evaluation on the whole
val set. Both runs train identically, so the final top-1 must be equal (checked).

    python benchmarks/probe_eval.py                              # synthetic (the search default)
    python benchmarks/probe_eval.py --data data/cifar10          # 50,000 / 10,000 images
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from nasbench.device import resolve_device
from nasbench.metrics.latency import device_name
from nasbench.nas.study import PROBE_VAL_IMAGES
from nasbench.proxy.data import load_data
from nasbench.proxy.train import EvalPlan, Recipe, train_proxy
from nasbench.zoo import resolve
from report_out import emit  # benchmarks/ is on sys.path when a script runs


def one_trial(name: str, data, *, probe_val: int | None, steps: int, batch: int, evals: int,
              device: torch.device) -> tuple[float, float]:
    """(wall seconds of the train_proxy call, final top-1), search settings."""
    torch.manual_seed(0)
    model = resolve(name).build(num_classes=data.num_classes)
    start = time.perf_counter()
    result = train_proxy(model, data, Recipe(steps=steps, batch=batch), EvalPlan(evals=evals, probe_val=probe_val),
                         device=device, seed=0)
    return time.perf_counter() - start, result.top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="proxy data source (default: the synthetic task)")
    parser.add_argument("--models", nargs="+", default=["mobilevit_xxs", "efficientvit_m0", "mobilevit_s"])
    parser.add_argument("--steps", type=int, default=120, help="the search's --proxy-steps default")
    parser.add_argument("--batch", type=int, default=64, help="the search's --proxy-batch default")
    parser.add_argument("--imgsz", type=int, default=32, help="the search's --proxy-imgsz default")
    parser.add_argument("--evals", type=int, default=10, help="train_proxy's default, as the search runs it")
    parser.add_argument("--probe-val", type=int, default=PROBE_VAL_IMAGES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(args.data, imgsz=args.imgsz, seed=0).to(device)
    settings = dict(steps=args.steps, batch=args.batch, evals=args.evals, device=device)
    lines = [f"data {data.info.label}: {data.info.n_train} train / {data.info.n_val} val at {args.imgsz} px; "
             f"{args.steps} steps x batch {args.batch}, {args.evals} evaluations; device {device_name(device)}, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}; median of {args.repeats} interleaved "
             "repeats", "",
             f"| model | s per trial, whole val every time | s per trial, probe {args.probe_val} + whole val last "
             "| speed-up | final top-1 equal |",
             "|---|---:|---:|---:|---|"]
    for name in args.models:
        whole, probed, equal = [], [], True
        for _ in range(args.repeats):
            s_whole, top1_whole = one_trial(name, data, probe_val=None, **settings)
            s_probe, top1_probe = one_trial(name, data, probe_val=args.probe_val, **settings)
            whole.append(s_whole)
            probed.append(s_probe)
            equal &= top1_whole == top1_probe
        w, p = statistics.median(whole), statistics.median(probed)
        lines.append(f"| {name} | {w:.1f} | {p:.1f} | {w / p:.2f}x | {'yes' if equal else 'NO'} |")
        print(lines[-1], flush=True)
    emit(lines, args.out)


if __name__ == "__main__":
    main()
