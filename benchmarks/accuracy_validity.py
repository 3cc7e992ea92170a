"""Accuracy validity: how well each estimator orders and predicts published ImageNet top-1.

For every estimator in ``nasbench.estimate.ESTIMATORS`` and for short proxy training at
several settings, over every preset with a published top-1 (the family modules):

- Kendall tau overall, tau inside each family with >= 3 published presets, the share of
  matched-cost cross-family pairs ordered right (``nasbench.estimate.validity``);
- fitted estimators: leave-one-family-out predictions only, and their mean absolute error
  in top-1 points; the choice of the default among the fit candidates is scored by a
  nested leave-one-family-out run as well;
- held-out generalisation: the same estimators (fitted on every preset) on classic
  ImageNet models that are in no table of the project (``benchmarks/heldout/classic.py``,
  torchvision's published top-1);
- median seconds per candidate on this machine (signals timed when the tables were written;
  training: wall time of the run).

Tables it reads or writes (each step is skipped when its file is there, unless asked):
- ``nasbench/estimate/reference_signals.json``: signals of the published presets
  (``--write-reference`` recomputes it; the package reads it at run time);
- ``benchmarks/results/accuracy_heldout_signals.json``: signals of the held-out models;
- ``benchmarks/results/accuracy_reinit_signals.json``: the presets' zero-cost signals after a
  family-free re-initialisation (``accuracy_init.py``);
- ``benchmarks/results/accuracy_training_rows.jsonl``: one line per proxy-training run;
- ``nasbench/estimate/proxy_validity.json``: the training rows' figures, for reports.

    python benchmarks/accuracy_validity.py --out benchmarks/results/accuracy_validity_cpu.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasbench.estimate import estimators as est
from nasbench.estimate.fitted import fit_linear
from nasbench.estimate.reference import (
    ReferenceRow,
    published_presets,
    reference_meta,
    reference_rows,
    write_reference,
)
from nasbench.estimate.signals import SIGNALS, measure_signals, seconds_for
from nasbench.estimate.validity import Validity, kendall_tau, mean_abs_error, validity
from nasbench.metrics.latency import device_name
from nasbench.proxy.data import load_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_init import init_section, reinit_signals  # noqa: E402
from heldout.classic import FACTORIES, FAMILY, PUBLISHED_TOP1, PUBLISHED_TOP1_NEW_RECIPE  # noqa: E402
from rank_fidelity import train_one  # noqa: E402
from report_out import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
REFERENCE_PATH = REPO / "nasbench" / "estimate" / "reference_signals.json"
PROXY_VALIDITY_PATH = REPO / "nasbench" / "estimate" / "proxy_validity.json"
HELDOUT_VALIDITY_PATH = REPO / "nasbench" / "estimate" / "heldout_validity.json"
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class TrainSetting:
    """One short-training estimator: data, px, steps (batch 64, lr 2e-3, the search's recipe)."""

    name: str
    data: str  # "synthetic" or a folder under ../shared/data
    imgsz: int
    steps: int
    max_gmacs: float | None = None  # presets above this many GMACs at native size are left out (CPU time)
    note: str = ""


TRAIN_SETTINGS = (
    TrainSetting("proxy_synthetic_32px_120", "synthetic", 32, 120, note="the search's default before this change"),
    TrainSetting("proxy_cifar10_32px_120", "cifar10-small", 32, 120, max_gmacs=8.0),
    TrainSetting("proxy_cifar10_64px_120", "cifar10-small", 64, 120, max_gmacs=3.0),
    TrainSetting("proxy_cifar10_128px_40", "cifar10-small", 128, 40, max_gmacs=0.3,
                 note="40 steps: 128 px costs 16x 32 px on this CPU"),
)


# ----------------------------------------------------------------------------- signals
def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def heldout_signals(path: Path, log) -> dict[str, dict[str, Any]]:
    """Signals of every held-out model (computed once, kept in ``path``)."""
    stored = json.loads(path.read_text()) if path.exists() else {}
    for name, factory in FACTORIES.items():
        if name in stored:
            continue
        log(f"held-out signals of {name}")
        torch.manual_seed(0)
        values, seconds = measure_signals(factory(), PUBLISHED_TOP1[name].imgsz, SIGNALS)
        stored[name] = {"signals": values, "seconds": seconds}
        write_json(path, stored)
    return stored


def heldout_figures(estimator, stored: dict[str, dict[str, Any]]) -> tuple[float, float | None]:
    """tau (and MAE when calibrated) of an estimator fitted on all presets, on the held-out models."""
    names = list(FACTORIES)
    truth = [PUBLISHED_TOP1[n].top1 for n in names]
    values = [estimator.value_of(stored[n]["signals"]) for n in names]
    return kendall_tau(values, truth), (mean_abs_error(values, truth) if estimator.calibrated else None)


def heldout_table(stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the package shows users beside an estimate of a model outside the zoo."""
    figures = {name: dict(zip(("tau", "mae"), heldout_figures(e, stored))) for name, e in est.ESTIMATORS.items()}
    return {"source": "benchmarks/results/accuracy_validity_cpu.md (benchmarks/heldout/classic.py)",
            "models": len(FACTORIES), "estimators": figures}


# ----------------------------------------------------------------------------- ceiling
# Depth (log of the weight layers run) is the one family-free signal that orders the classic
# models better than it orders the presets; declared here for the ceiling analysis only.
CEILING_EXTRA = (est.FittedEstimator("fit_cost_layers", ("log_positional_params", "log_activations", "log_layers"),
                                     "fit_cost + log depth (ceiling analysis only)"),)


def ceiling_lines(stored: dict[str, dict[str, Any]]) -> list[str]:
    """An upper bound for the held-out column: the classic models join the table as more
    families, and every family (preset or classic) is predicted by a fit on all the others.
    The product's fits never see the classic models; this says whether more diverse training
    data of the same kind could reach the held-out line at all."""
    classic = [ReferenceRow(n, f"classic:{FAMILY[n]}", PUBLISHED_TOP1[n].imgsz, PUBLISHED_TOP1[n].top1,
                            stored[n]["signals"], stored[n]["seconds"]) for n in FACTORIES]
    rows = [*reference_rows(), *classic]
    lines = ["| fit | classic tau (LOFO) | classic MAE | presets tau (LOFO) | presets MAE |",
             "|---|---:|---:|---:|---:|"]
    for candidate in (*est.FIT_CANDIDATES, *CEILING_EXTRA):
        pred = candidate.reference_values(rows)
        split = {kind: ([p for p, r in zip(pred, rows) if r.family.startswith("classic:") == is_classic],
                        [r.top1 for r in rows if r.family.startswith("classic:") == is_classic])
                 for kind, is_classic in (("classic", True), ("presets", False))}
        cells = [f"{kendall_tau(*split[k]):.3f} | {mean_abs_error(*split[k]):.2f}" for k in ("classic", "presets")]
        lines.append(f"| {candidate.name} | " + " | ".join(cells) + " |")
    return lines


IN_SAMPLE_MAX_SIGNALS = 3


def in_sample_ceiling(stored: dict[str, dict[str, Any]]) -> tuple[float, tuple[str, ...]]:
    """The best tau on the classic models of a linear fit of at most IN_SAMPLE_MAX_SIGNALS
    stored signals fitted on the classic models themselves, the subset chosen by that same
    tau: an optimistic bound (in sample, selected on the answer) that no product can have."""
    names = list(FACTORIES)
    rows = [stored[n]["signals"] for n in names]
    truth = [PUBLISHED_TOP1[n].top1 for n in names]
    varying = sorted(s for s in rows[0] if len({r[s] for r in rows}) > 1)
    best: tuple[float, tuple[str, ...]] = (-1.0, ())
    for size in range(1, IN_SAMPLE_MAX_SIGNALS + 1):
        for subset in itertools.combinations(varying, size):
            line = fit_linear(rows, [est.error_target(t) for t in truth], subset, ridge=1e-6)
            tau = kendall_tau([-line.predict(r) for r in rows], truth)  # lower error -> higher top-1
            best = max(best, (tau, subset))
    return best


# ----------------------------------------------------------------------------- training rows
def train_key(setting: str, preset: str) -> str:
    return f"{setting}|{preset}"


def training_rows(path: Path, settings: list[TrainSetting], log) -> dict[str, dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[train_key(r["setting"], r["preset"])] = r
    for setting in settings:
        todo = [p for p in training_presets(setting) if train_key(setting.name, p) not in rows]
        if not todo:
            continue
        source = None if setting.data == "synthetic" else SHARED_DATA / setting.data
        data = load_data(source, imgsz=setting.imgsz, seed=0)
        for preset in todo:
            log(f"{setting.name}: training {preset}")
            row = train_one(preset, data, steps=setting.steps, seed=0, batch=64, lr=2e-3, device="cpu")
            row["setting"] = setting.name
            rows[train_key(setting.name, preset)] = row
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def training_presets(setting: TrainSetting) -> list[str]:
    by_name = {r.name: r for r in reference_rows()}
    return [p for p in published_presets() if p in by_name
            and (setting.max_gmacs is None or by_name[p].signals["macs"] <= setting.max_gmacs * 1e9)]


def training_validity(setting: TrainSetting, rows: dict[str, dict[str, Any]]) -> tuple[Validity, float] | None:
    refs = [r for r in reference_rows() if train_key(setting.name, r.name) in rows]
    if len(refs) < 3:
        return None
    top1 = [rows[train_key(setting.name, r.name)]["top1"] for r in refs]
    v = validity(top1, [r.top1 for r in refs], [r.family for r in refs], [r.signals["macs"] for r in refs], False)
    wall = statistics.median(rows[train_key(setting.name, r.name)]["wall_s"] for r in refs)
    return v, wall


# ----------------------------------------------------------------------------- report
def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if value is None or value != value else fmt.format(value)


def estimator_row(estimator, heldout: dict[str, dict[str, Any]]) -> dict[str, Any]:
    v = est.estimator_validity(estimator)
    ht, hmae = heldout_figures(estimator, heldout)
    seconds = statistics.median(seconds_for(estimator.signals, r.seconds) for r in reference_rows())
    return {"name": estimator.name, "kind": estimator.kind, "v": v, "heldout_tau": ht, "heldout_mae": hmae,
            "seconds": seconds, "what": estimator.description}


def table_line(name: str, kind: str, v: Validity, heldout_tau, heldout_mae, seconds: float, mark: str = "") -> str:
    return (f"| {mark}{name}{mark} | {kind} | {v.n} | {v.tau:.3f} | {_f(v.min_family_tau)} | "
            f"{v.pairs_right}/{v.pairs_total} ({100 * v.pairs_share:.0f}%) | {_f(v.mae)} | "
            f"{_f(heldout_tau, '{:.3f}')} | {_f(heldout_mae)} | {seconds:.2f} |")


def family_table(rows: list[tuple[str, Validity]]) -> list[str]:
    families = sorted(rows[0][1].tau_by_family)
    lines = ["| estimator | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
    for name, v in rows:
        lines.append(f"| {name} | " + " | ".join(_f(v.tau_by_family.get(f)) for f in families) + " |")
    return lines


def machine_line() -> str:
    meta = reference_meta()
    return (f"Assembled on: {device_name(torch.device('cpu'))}, {torch.get_num_threads()} torch threads, torch "
            f"{torch.__version__}, Python {platform.python_version()}. The seconds columns were recorded when the "
            f"signal tables were written ({meta.get('machine')}, {meta.get('threads')} threads, torch "
            f"{meta.get('torch')}); the training rows' when they ran.")


def goal_lines(v: Validity, nested: Validity, heldout_tau: float, seconds: float) -> list[str]:
    def status(ok: bool) -> str:
        return "met" if ok else "**not met**"
    return [
        "| goal (out of sample) | line | default | nested selection | status |",
        "|---|---|---:|---:|---|",
        f"| tau over all published presets | >= 0.9 | {v.tau:.3f} | {nested.tau:.3f} | {status(v.tau >= 0.9)} |",
        f"| tau within every family (>= 3 presets) | >= 0.9 | {v.min_family_tau:.2f} (min) | "
        f"{nested.min_family_tau:.2f} | {status(v.min_family_tau >= 0.9)} |",
        f"| matched-cost pairs ordered right | >= 90% | {100 * v.pairs_share:.0f}% | {100 * nested.pairs_share:.0f}% "
        f"| {status(v.pairs_share >= 0.9)} |",
        f"| mean abs. error, leave-one-family-out | <= 1.5 points | {v.mae:.2f} | {nested.mae:.2f} | "
        f"{status(v.mae <= 1.5)} |",
        f"| median seconds per candidate (this CPU) | <= 30 s | {seconds:.2f} | — | {status(seconds <= 30)} |",
        f"| tau on held-out classic models | >= 0.85 | {heldout_tau:.3f} | — | {status(heldout_tau >= 0.85)} |",
    ]


def ceiling_section(heldout: dict[str, dict[str, Any]]) -> list[str]:
    """Whether fits of the product's kind could reach the held-out line at all."""
    lines = ["## Can the held-out line be reached by fits of this kind?", "",
              f"A ceiling, not a figure of the product: the {len(FACTORIES)} classic models join the table as "
              f"{len(set(FAMILY.values()))} more families (ResNeXt and wide ResNet counted as ResNets, VGG-BN as VGG), "
              "and every family, preset or classic, is predicted by a fit on all the others. Even with classic "
              "models of other lineages in the fit, a ridge fit of family-free signals orders the classic models "
              "far below the 0.85 line, and the presets' error grows: the gap is not a lack of similar training "
              "models but what these signals cannot see (the training recipe: 90-epoch SGD for most classics, "
              "long schedules with strong augmentation for the presets and for MobileNetV3).", "",
              *ceiling_lines(heldout), ""]
    tau, subset = in_sample_ceiling(heldout)
    lines += [f"Fitted on the classic models themselves (in sample), with the best of every subset of up to "
              f"{IN_SAMPLE_MAX_SIGNALS} of the {len(next(iter(heldout.values()))['signals'])} stored signals "
              f"chosen by its classic tau, a linear fit reaches tau {tau:.3f} ({' + '.join(subset)}): "
              f"{'below' if tau < 0.85 else 'at or above'} the 0.85 line even when it is allowed to see the answers.",
              ""]
    return lines


def recipe_section(heldout: dict[str, dict[str, Any]]) -> list[str]:
    """Same architecture, two recipes: the held-out models torchvision retrained with its new recipe."""
    both = [n for n in FACTORIES if n in PUBLISHED_TOP1_NEW_RECIPE]
    newest = {n: PUBLISHED_TOP1_NEW_RECIPE.get(n, PUBLISHED_TOP1[n]).top1 for n in FACTORIES}
    lines = ["## Same architecture, another recipe", "",
             f"{len(both)} of the classic models were retrained by torchvision with its new recipe (long schedule, "
             f"strong augmentation, EMA: {', '.join(both)}; IMAGENET1K_V2 weights, 224 crop). Each fit, trained on "
             "the presets only as in the held-out columns, against both published numbers of the same "
             "architectures; the last column takes, for each of the 30 classic models, its newest recipe's number.",
             "", f"| fit | MAE, {len(both)} models, old recipe | MAE, same {len(both)}, new recipe | "
             f"tau, {len(both)}, old | tau, {len(both)}, new | tau, all 30, newest recipe |",
             "|---|---:|---:|---:|---:|---:|"]
    old = [PUBLISHED_TOP1[n].top1 for n in both]
    new = [PUBLISHED_TOP1_NEW_RECIPE[n].top1 for n in both]
    nearer = 0  # fits whose estimates are nearer the new recipe's numbers than the old one's
    for candidate in est.FIT_CANDIDATES:
        pred = {n: candidate.value_of(heldout[n]["signals"]) for n in FACTORIES}
        mine = [pred[n] for n in both]
        lines.append(f"| {candidate.name} | {mean_abs_error(mine, old):.2f} | {mean_abs_error(mine, new):.2f} | "
                     f"{kendall_tau(mine, old):.3f} | {kendall_tau(mine, new):.3f} | "
                     f"{kendall_tau(list(pred.values()), list(newest.values())):.3f} |")
        nearer += mean_abs_error(mine, new) < mean_abs_error(mine, old)
    return [*lines, "", f"The fits were made on presets trained with modern recipes. For {nearer} of the "
            f"{len(est.FIT_CANDIDATES)} fits the new recipe's numbers of the same architectures are nearer the "
            "estimates than the old recipe's: part of the error the held-out columns report is the recipe, which "
            f"no reading of the architecture can know. Only {len(both)} of the 30 have a new-recipe number, so the "
            "tau over all 30 barely moves.", ""]


NOISE_SIGMAS_POINTS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
NOISE_DRAWS = 2000


def noisy_tau(truth: list[float], sigma_points: float, draws: int = NOISE_DRAWS) -> tuple[float, float, float]:
    """Mean, 10th and 90th percentile of Kendall tau between the published top-1 and the published
    top-1 plus Gaussian error of sigma_points: how well an estimator with that error can order them."""
    rng = np.random.default_rng(0)
    taus = [kendall_tau(list(np.asarray(truth) + rng.normal(0.0, sigma_points, len(truth))), truth)
            for _ in range(draws)]
    return float(np.mean(taus)), float(np.percentile(taus, 10)), float(np.percentile(taus, 90))


def precision_section(default_heldout: tuple[float, float], default_lofo: tuple[float, float]) -> list[str]:
    """``default_heldout``, ``default_lofo``: the default's (tau, mean abs. error) on the classic models
    and leave-one-family-out on the presets."""
    # What error in top-1 points the tau lines ask of any estimator, from the published values alone.
    sets = {"30 classic": ([p.top1 for p in PUBLISHED_TOP1.values()], 0.85),
            f"{len(reference_rows())} presets": ([r.top1 for r in reference_rows()], 0.9)}
    lines = ["## What the tau lines ask for, in top-1 points", "",
             "Published values alone, no estimator: Kendall tau between the published top-1 and the published "
             "top-1 plus Gaussian error of sigma points (mean over "
             f"{NOISE_DRAWS} draws, seeded; p10-p90 in brackets). An estimate whose error is sigma has a mean "
             "absolute error of about 0.8 sigma.", "",
             "| error sigma (points) | mean abs. error | "
             + " | ".join(f"tau, {k} (line {line})" for k, (_, line) in sets.items()) + " |",
             "|---:|---:|" + "---:|" * len(sets)]
    largest_ok = {}
    for sigma in NOISE_SIGMAS_POINTS:
        figures = {k: noisy_tau(truth, sigma) for k, (truth, _) in sets.items()}
        largest_ok.update({k: sigma for k, f in figures.items() if f[0] >= sets[k][1]})
        cells = [("{:.3f} ({:.2f}-{:.2f})").format(*f) for f in figures.values()]
        lines.append(f"| {sigma:.1f} | {sigma * math.sqrt(2 / math.pi):.2f} | " + " | ".join(cells) + " |")
    needs = "; ".join(f"{k}: sigma <= {largest_ok[k]:.1f} of the sigmas above" if k in largest_ok
                      else f"{k}: none of the sigmas above" for k in sets)
    classic_truth = sets["30 classic"][0]
    sigma_default = default_heldout[1] / math.sqrt(2 / math.pi)
    lines += ["", f"The mean tau meets its line for: {needs}. Gaussian error as large as the default's on the "
              f"classic models (mean abs. error {default_heldout[1]:.2f} points, sigma {sigma_default:.1f}) gives "
              f"tau {noisy_tau(classic_truth, sigma_default)[0]:.3f} there on average; the default reaches "
              f"{default_heldout[0]:.3f}. Its held-out tau is what an error of that size allows: the line needs an "
              "estimate several times closer to the truth, not a better order of the same estimate. Errors that "
              "are not independent can order better than this table says: on the presets, the default's "
              f"leave-one-family-out error is {default_lofo[1]:.2f} points and its tau {default_lofo[0]:.3f}, because "
              "its error is shared within a family and keeps each family's order.", ""]
    return lines


def build_report(heldout: dict[str, dict[str, Any]], reinit: dict[str, dict[str, float]],
                 train_rows: dict[str, dict[str, Any]], command: str,
                 wall_s: float) -> tuple[list[str], dict[str, Any]]:
    rows = [estimator_row(e, heldout) for e in est.ESTIMATORS.values()]
    default = next(r for r in rows if r["name"] == est.DEFAULT_ESTIMATOR)
    nested, picks = est.nested_lofo()
    n_pairs = default["v"].pairs_total
    header = ["| estimator | kind | n | Kendall tau | min tau in a family | matched-cost pairs right | MAE LOFO "
              "(points) | held-out tau (30 classic) | held-out MAE | median s / candidate |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines = [
        "# Accuracy validity: estimators against published ImageNet-1k top-1", "",
        f"Command: `{command}` ({wall_s / 60:.1f} min, including the tables this run had to compute; "
        "with all of them written it takes seconds).", "",
        machine_line(), "",
        f"Ground truth: the published top-1 of the {default['v'].n} presets that have one (`nasbench models`; "
        "values and sources in the family modules). Matched-cost pairs: presets of different families with MACs "
        f"within 1.5x of each other and published top-1 at least 1 point apart ({n_pairs} pairs). Fitted "
        "estimators are scored leave-one-family-out only (each family predicted by a fit on the other five); "
        "the held-out columns use the fit on all presets, on 30 classic ImageNet models in no table of the "
        "project (benchmarks/heldout/classic.py, torchvision's published top-1). Zero-cost signals use the "
        "built-in 1/f images (2 batches of 8 at native resolution, random labels), weights seeded 0.", "",
        *header,
    ]
    for r in rows:
        mark = "**" if r["name"] == est.DEFAULT_ESTIMATOR else ""
        lines.append(table_line(r["name"], r["kind"], r["v"], r["heldout_tau"], r["heldout_mae"], r["seconds"], mark))
    nested_s = statistics.median(
        seconds_for(tuple({s for c in est.FIT_CANDIDATES for s in c.signals}), r.seconds) for r in reference_rows())
    lines.append(table_line("nested choice among the fit candidates", "fitted", nested, None, None, nested_s))
    proxy = {}
    for setting in TRAIN_SETTINGS:
        found = training_validity(setting, train_rows)
        if found is None:
            continue
        v, wall = found
        proxy[setting.name] = {"n": v.n, "tau": v.tau, "pairs_right": v.pairs_right, "pairs_total": v.pairs_total,
                               "min_family_tau": v.min_family_tau, "data": setting.data, "imgsz": setting.imgsz,
                               "steps": setting.steps}
        lines.append(table_line(setting.name + (f" ({setting.note})" if setting.note else ""), "training", v,
                                None, None, wall))
    trained = [(name, training_validity(s, train_rows)) for name, s in ((s.name, s) for s in TRAIN_SETTINGS)]
    lines += ["", "Per-family tau (families with >= 3 published presets; training rows over the presets they ran):",
              "", *family_table([(r["name"], r["v"]) for r in rows if r["kind"] in ("cost", "fitted")]
                                + [(name, found[0]) for name, found in trained if found is not None]), ""]
    lines += ["## The default", "",
              f"`{est.DEFAULT_ESTIMATOR}`: {default['what']}. It is the fit candidate with the lowest "
              f"leave-one-family-out error (`select_default()` over {len(est.FIT_CANDIDATES)} candidates declared "
              "in `nasbench/estimate/estimators.py`). Choosing among candidates on the same table is itself a fit, "
              "so the nested row scores the whole procedure held out: each family is predicted by the candidate "
              f"chosen on the other families (picks: {', '.join(f'{k} -> {v}' for k, v in picks.items())}).", "",
              f"Fit on all presets: `{est.get_estimator('default').fit().describe('log(100 - top-1)')}` "
              "(z = the signal standardised over the presets).", "",
              "Status is that of the default; the nested column is the honest figure for having chosen it.", "",
              *goal_lines(default["v"], nested, default["heldout_tau"], default["seconds"]), ""]
    held, lofo = (default["heldout_tau"], default["heldout_mae"]), (default["v"].tau, default["v"].mae)
    lines += [*init_section(reinit), *ceiling_section(heldout), *recipe_section(heldout),
              *precision_section(held, lofo)]
    return lines, proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-reference", action="store_true", help="recompute the presets' signal table")
    parser.add_argument("--heldout", type=Path, default=RESULTS / "accuracy_heldout_signals.json")
    parser.add_argument("--train-log", type=Path, default=RESULTS / "accuracy_training_rows.jsonl")
    parser.add_argument("--no-train", action="store_true", help="report only the training rows already logged")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    if args.write_reference or not REFERENCE_PATH.exists():
        write_reference(REFERENCE_PATH, published_presets(), log,
                        meta={"threads": args.threads, "machine": device_name(torch.device("cpu"))})
        reference_rows.cache_clear()
    heldout = heldout_signals(args.heldout, log)
    reinit = reinit_signals(RESULTS / "accuracy_reinit_signals.json", log)
    settings = [] if args.no_train or not (SHARED_DATA / "cifar10-small").exists() else list(TRAIN_SETTINGS)
    train_rows = training_rows(args.train_log, settings, log)
    command = "python benchmarks/accuracy_validity.py" + (f" --out {args.out}" if args.out else "")
    lines, proxy = build_report(heldout, reinit, train_rows, command, time.perf_counter() - started)
    write_json(PROXY_VALIDITY_PATH, {"source": "benchmarks/results/accuracy_validity_cpu.md", "settings": proxy})
    write_json(HELDOUT_VALIDITY_PATH, heldout_table(heldout))
    emit(lines, args.out)


if __name__ == "__main__":
    main()
