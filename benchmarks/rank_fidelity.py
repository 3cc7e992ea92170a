"""Rank fidelity of the search's proxy: does a short run rank models like a longer one?

Trains each preset with ``train_proxy`` on real data loaded by ``load_data``, exactly as
``nasbench search`` trains a candidate (its defaults: 32 px, batch 64, lr 2e-3, the
trainer's own recipe), once with the search's default length (``--steps``, 120) for each
``--seeds`` value and once ``--factor`` times longer (seed = the first seed). Reports
per-preset top-1 and wall time, then Kendall's tau and Spearman's rho between

- short (each seed) and long: the rank fidelity of the default budget;
- short seed A and short seed B: how well the proxy agrees with itself, the ceiling any
  fidelity figure is measured against.

The model's initial weights are seeded with the run's seed (``torch.manual_seed`` before
building). Only the final evaluation is run (``evals=1``): evaluations draw no random
numbers and leave the weights alone, so the final top-1 equals that of the search's
10-evaluation run without a pruner. Rows are appended to ``--log`` (JSON lines) as they
finish, and a re-run with the same settings skips the rows already there.

    python benchmarks/rank_fidelity.py --data data/cifar10 \
        --out benchmarks/results/proxy_rank_fidelity_cpu.md

``data/cifar10`` is ``../shared/data/cifar10-full.tar.gz`` extracted under the
git-ignored ``data/`` folder; the script extracts it there when it is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tarfile
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from nasbench.metrics.latency import device_name
from nasbench.proxy.data import load_data
from nasbench.proxy.train import EvalPlan, Recipe, train_proxy
from nasbench.zoo import resolve

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "cifar10"
CIFAR_TARBALL = REPO.parent / "shared" / "data" / "cifar10-full.tar.gz"
# Small to large across five families; all accept 32 px inputs (ghostnetv3 does not:
# its stride-32 stem leaves a 1x1 map that its pooling cannot reduce).
DEFAULT_PRESETS = (
    "mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilevitv2_100",
    "efficientvit_m0", "efficientvit_m2", "efficientvit_m4",
    "mobileformer_26m", "mobileformer_96m", "hgnetv2_l", "volo_d1",
)


def ensure_data(path: Path) -> Path:
    """The default CIFAR-10 folder, extracted from the shared tarball on first use."""
    if path.exists() or path != DEFAULT_DATA or not CIFAR_TARBALL.exists():
        return path
    print(f"extracting {CIFAR_TARBALL} into {path.parent}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(CIFAR_TARBALL) as tar:
        tar.extractall(path.parent, filter="data")
    return path


def run_key(preset: str, steps: int, seed: int) -> str:
    return f"{preset}|{steps}|{seed}"


def train_one(preset: str, data, *, steps: int, seed: int, batch: int, lr: float, device: str) -> dict[str, Any]:
    torch.manual_seed(seed)  # fixed initial weights per seed
    model = resolve(preset).build(num_classes=data.num_classes)
    start = time.perf_counter()
    result = train_proxy(model, data, Recipe(steps=steps, batch=batch, lr=lr), EvalPlan(evals=1), device=device,
                         seed=seed)
    return {"preset": preset, "steps": steps, "seed": seed, "params": result.params, "top1": result.top1,
            "val_loss": result.val_loss, "diverged": result.diverged, "wall_s": time.perf_counter() - start,
            "train_s": result.train_s, "images_per_s": result.images_per_s}


def load_log(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {run_key(r["preset"], r["steps"], r["seed"]): r for r in rows}


def correlation(a: list[float], b: list[float]) -> dict[str, float]:
    tau = stats.kendalltau(a, b)
    rho = stats.spearmanr(a, b)
    return {"tau": float(tau.statistic), "tau_p": float(tau.pvalue), "rho": float(rho.statistic),
            "rho_p": float(rho.pvalue), "n": len(a)}


def p_value(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def top_k_overlap(a: list[float], b: list[float], k: int) -> int:
    """How many of a's k best are among b's k best."""
    def best(values: list[float]) -> set[int]:
        return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])

    return len(best(a) & best(b))


def discordant_gaps(a: list[float], b: list[float]) -> list[float]:
    """|a_i - a_j| for every pair that a and b order differently, smallest first."""
    return sorted(abs(a[i] - a[j]) for i in range(len(a)) for j in range(i + 1, len(a))
                  if (a[i] - a[j]) * (b[i] - b[j]) < 0)


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace, long_steps: int, data_desc: str,
           command: str) -> str:
    presets = [p for p in args.presets if all(run_key(p, args.steps, s) in rows for s in args.seeds)
               and run_key(p, long_steps, args.seeds[0]) in rows]
    short = {s: [rows[run_key(p, args.steps, s)]["top1"] for p in presets] for s in args.seeds}
    long = [rows[run_key(p, long_steps, args.seeds[0])]["top1"] for p in presets]
    seed_cols = " | ".join(f"short top-1 % (seed {s})" for s in args.seeds)
    lines = [
        f"# Proxy rank fidelity: {args.steps} vs {long_steps} steps ({data_desc})",
        "",
        f"Command: `{command}`",
        "",
        (f"Machine: {device_name(torch.device('cpu'))}, {torch.get_num_threads()} torch threads, "
         f"torch {torch.__version__}, "
         f"device {args.device}. The CPU is shared with other jobs, so wall times are indicative only."),
        "",
        (f"Proxy as the search runs it: `train_proxy`, {args.imgsz} px, batch {args.batch}, lr {args.lr:g}, "
         "the trainer's default recipe (AdamW, warm-up + cosine, label smoothing 0.1, pad-crop + flip), "
         f"fp32. Short = {args.steps} steps ({args.steps * args.batch:,} images), long = {long_steps} steps "
         f"({long_steps * args.batch:,} images, seed {args.seeds[0]}). Top-1 on the whole val set."),
        "",
        f"| preset | params M | {seed_cols} | long top-1 % | short wall s | long wall s |",
        "|---|---:|" + "---:|" * len(args.seeds) + "---:|---:|---:|",
    ]
    for _i, p in enumerate(sorted(presets, key=lambda q: rows[run_key(q, long_steps, args.seeds[0])]["params"])):
        r_long = rows[run_key(p, long_steps, args.seeds[0])]
        r_short = [rows[run_key(p, args.steps, s)] for s in args.seeds]
        tops = " | ".join(f"{r['top1']:.2f}" for r in r_short)
        lines.append(f"| {p} | {r_long['params'] / 1e6:.2f} | {tops} | {r_long['top1']:.2f} | "
                     f"{r_short[0]['wall_s']:.0f} | {r_long['wall_s']:.0f} |")
    lines += ["", "| compared | n | Kendall tau | p | Spearman rho | p | top-3 overlap |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    pairs = [(f"short seed {s} vs long", short[s], long) for s in args.seeds]
    if len(args.seeds) > 1:
        pairs.append((f"short seed {args.seeds[0]} vs short seed {args.seeds[1]} (proxy noise)",
                      short[args.seeds[0]], short[args.seeds[1]]))
        mean_short = [sum(v) / len(v) for v in zip(*short.values())]
        pairs.append(("mean of short seeds vs long", mean_short, long))
    for name, a, b in pairs:
        c = correlation(a, b)
        lines.append(f"| {name} | {c['n']} | {c['tau']:.2f} | {p_value(c['tau_p'])} | {c['rho']:.2f} | "
                     f"{p_value(c['rho_p'])} | {top_k_overlap(a, b, 3)}/3 |")
    lines.append("")
    if len(args.seeds) > 1:
        gaps = sorted(abs(a - b) for a, b in zip(short[args.seeds[0]], short[args.seeds[1]]))
        lines.append(f"Seed noise of the short run, |top-1 seed {args.seeds[0]} - seed {args.seeds[1]}| per preset: "
                     f"median {statistics.median(gaps):.2f}, max {gaps[-1]:.2f} points.")
    mean_short = [sum(v) / len(v) for v in zip(*short.values())]
    flips = discordant_gaps(mean_short, long)
    n_pairs = len(presets) * (len(presets) - 1) // 2
    lines.append(f"Pairs ordered differently by the short run (mean of seeds) and the long run: {len(flips)} of "
                 f"{n_pairs}; their short-run gaps: {', '.join(f'{g:.2f}' for g in flips) or '-'} points.")
    total_s = sum(r["wall_s"] for r in rows.values() if r["preset"] in presets)
    lines += ["", f"Total training wall time for these rows: {total_s / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIFAR-10 ImageFolder (train/, val/)")
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    parser.add_argument("--steps", type=int, default=120, help="short run: the search's --proxy-steps default")
    parser.add_argument("--factor", type=int, default=4, help="long run = factor x steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="short-run seeds; long uses the first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--imgsz", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log", type=Path, default=Path("/tmp/nasbench_rank_fidelity.jsonl"))
    parser.add_argument("--out", type=Path, default=None, help="markdown report (default: print only)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data_dir = ensure_data(args.data)
    data = load_data(data_dir, imgsz=args.imgsz, seed=args.seeds[0]).to(args.device)
    data_desc = f"{Path(data.info.source).name}: {data.info.n_train:,} train / {data.info.n_val:,} val images"
    long_steps = args.steps * args.factor
    rows = load_log(args.log)
    plan = [(p, args.steps, s) for p in args.presets for s in args.seeds] + [(p, long_steps, args.seeds[0])
                                                                             for p in args.presets]
    plan.sort(key=lambda run: args.presets.index(run[0]))  # preset by preset: partial logs stay usable
    for preset, steps, seed in plan:
        if run_key(preset, steps, seed) in rows:
            continue
        row = train_one(preset, data, steps=steps, seed=seed, batch=args.batch, lr=args.lr, device=args.device)
        rows[run_key(preset, steps, seed)] = row
        with args.log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{preset} steps {steps} seed {seed}: top-1 {row['top1']:.2f}% in {row['wall_s']:.0f} s", flush=True)

    command = "python benchmarks/rank_fidelity.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if k not in ("log", "out") and v != parser.get_default(k))
    text = report(rows, args, long_steps, data_desc, command.strip())
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
