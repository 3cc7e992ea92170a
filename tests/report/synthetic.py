"""Synthetic nasbench search studies, built with Optuna directly (no model is measured).

They follow /work/helper/STUDY_CONTRACT.md: study and trial user attributes, the
latency constraint, and every trial state a real search leaves behind (feasible and
infeasible COMPLETE trials, PRUNED ones with intermediate values, FAILed ones, reused
duplicates). Costs are made-up but plausible functions of the knobs, so plots and
importances have structure to show. Used by the report tests and benchmarks/report_speed.py.
"""

from __future__ import annotations

import datetime as dt
import random

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

EVIL = "<script>alert('x')</script>"

DISTRIBUTIONS = {
    "family": CategoricalDistribution(["mobilevit", "efficientvit"]),
    "width": CategoricalDistribution([0.5, 0.75, 1.0, 1.25]),
    "depth": IntDistribution(1, 4),
    "heads": CategoricalDistribution([2, 4, 8]),
    "ffn_ratio": FloatDistribution(1.5, 4.0, step=0.25),
}
FAMILY_LATENCY_MS = {"mobilevit": 4.0, "efficientvit": 1.5}  # made-up fixed overhead per family


def _cost(params: dict, rng: random.Random) -> dict:
    """Made-up but monotone cost model: MACs grow with width² × depth × ffn ratio."""
    macs = int(120e6 * params["width"] ** 2 * (0.6 + 0.4 * params["depth"]) * (0.7 + 0.15 * params["ffn_ratio"]))
    macs += int(4e6 * params["heads"])
    latency = FAMILY_LATENCY_MS[params["family"]] + macs / 20e6 * rng.uniform(0.9, 1.15)
    return {
        "params": int(macs / 60), "macs": macs, "flops": 2 * macs,
        "latency_ms": round(latency, 4), "latency_p10_ms": round(latency * 0.97, 4),
        "latency_p90_ms": round(latency * 1.06, 4), "latency_runs": 30, "imgsz": 256, "batch": 1,
        "device": "cpu", "dtype": "fp32",
    }


def _top1(row: dict, rng: random.Random) -> float:
    # Saturating accuracy in MACs with noise, in % (synthetic data: this says nothing real).
    return round(20 + 55 * (1 - 2.718 ** (-row["macs"] / 250e6)) + rng.uniform(-3, 3), 3)


def _config(params: dict, evil: bool) -> dict:
    cfg = {"family": params["family"], "width": params["width"],
           "depths": [params["depth"], params["depth"] + 1, params["depth"]],
           "heads": params["heads"], "ffn_ratio": params["ffn_ratio"]}
    if evil:
        cfg["note"] = EVIL
    return cfg


def preset_rows(objective: str, detector: bool) -> list[dict]:
    rows = []
    for name, fam, macs, lat, top1 in [("mobilevit_xxs", "mobilevit", 364e6, 21.0, 52.0),
                                       ("mobilevit_xs", "mobilevit", 986e6, 52.0, 61.0),
                                       ("efficientvit_m0", "efficientvit", 79e6, 5.5, 40.0),
                                       ("efficientvit_m2", "efficientvit", 201e6, 11.0, 50.0)]:
        row = {"name": name, "family": fam, "params": int(macs / 60), "macs": int(macs), "flops": int(2 * macs),
               "latency_ms": lat, "latency_p10_ms": lat * 0.97, "latency_p90_ms": lat * 1.06, "imgsz": 256,
               "proxy_top1": top1 if objective == "proxy_top1" else None}
        if detector:
            row.update(det_params=int(20e6 + macs / 60), det_macs=int(25e9 + 6 * macs),
                       det_flops=int(2 * (25e9 + 6 * macs)),
                       det_latency_ms=lat * 4 + 60)
        rows.append(row)
    return rows


def baseline_row() -> dict:
    # Backbone keys (HGNetv2-L at the search imgsz) and detector keys (whole rtdetr-l at 640).
    return {"name": "rtdetr_l", "family": "rtdetr", "params": 14_000_000, "macs": 1_900_000_000,
            "flops": 3_800_000_000, "latency_ms": 48.0, "det_params": 32_970_000, "det_macs": 54_150_000_000,
            "det_flops": 108_300_000_000, "det_latency_ms": 260.0}


def make_study(n_trials: int = 60, *, storage: str | optuna.storages.BaseStorage | None = None,
               name: str = "synthetic", objective: str = "proxy_top1", detector: bool = False,
               evil: bool = False, seed: int = 0, budget_ms: float = 25.0) -> optuna.Study:
    """A study shaped like one `nasbench search` writes, with every trial state in it."""
    rng = random.Random(seed)
    study_name = f"{name}{EVIL}" if evil else name
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    proxy = None if objective == "macs" else {
        "data": "synthetic 10-class images (random patterns, fixed seed)", "synthetic": True, "steps": 200,
        "imgsz": 64, "batch": 32, "seed": 0}
    attrs = {
        "nasbench_version": "0.1.0", "space": f"spaces/{EVIL}.yaml" if evil else "spaces/mixed.yaml",
        "families": ["mobilevit", "efficientvit"], "target": "detector" if detector else "backbone",
        "budget_ms": budget_ms, "max_params": None, "max_macs": None, "imgsz": 256, "det_imgsz": 640,
        "device": "cpu", "device_name": "Synthetic CPU @ 2.0GHz", "dtype": "fp32", "threads": 2,
        "torch_version": "2.13.0", "cuda_version": None, "objective": objective, "proxy": proxy,
        "presets": preset_rows(objective, detector), "baseline": baseline_row(), "wall_s": 1234.5,
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)

    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    seen: dict[tuple, int] = {}
    trials = []
    sampled: list[dict] = []
    for number in range(n_trials):
        params = {k: _sample(d, rng) for k, d in DISTRIBUTIONS.items()}
        if number % 7 == 6:  # a sampler proposing an already measured config again
            params = dict(sampled[number - 5])
        sampled.append(params)
        row = _cost(params, rng)
        if detector:
            row.update(det_params=int(20e6 + row["params"]), det_macs=int(25e9 + 6 * row["macs"]),
                       det_flops=int(2 * (25e9 + 6 * row["macs"])), det_latency_ms=round(row["latency_ms"] * 4 + 60, 3))
        user = {"name": f"t{number:04d}", "config": _config(params, evil), "row": row,
                "constraint": [row["latency_ms"] - budget_ms]}
        key = tuple(sorted(params.items()))
        roll = rng.random()
        state, value, intermediate = TrialState.COMPLETE, None, {}
        feasible = row["latency_ms"] <= budget_ms
        if key in seen:
            user["duplicate_of"] = seen[key]
        seen.setdefault(key, number)
        if roll < 0.05:
            state = TrialState.FAIL
            user["reason"] = f"RuntimeError: shape mismatch in stage 2{EVIL if evil else ''}"
            user.pop("row")
            feasible = False
        elif not feasible:
            user["reason"] = f"latency {row['latency_ms']:.1f} ms > budget {budget_ms:g} ms"
            value = float(row["macs"]) if objective == "macs" else 0.0
        elif objective == "macs":
            value = float(row["macs"])
        else:
            top1 = _top1(row, rng)
            curve = [{"step": s, "val_top1": round(top1 * s / 200, 3), "val_loss": round(2.3 - s / 150, 3)}
                     for s in (50, 100, 150, 200)]
            if roll < 0.15:
                state = TrialState.PRUNED
                user["reason"] = "pruned at step 100: val_top1 below the median of earlier trials"
                curve = curve[:2]
            else:
                value = top1
                user.update(proxy_top1=top1, proxy_top5=min(100.0, top1 + 20), proxy_val_loss=curve[-1]["val_loss"],
                            proxy_images_per_s=850.0)
            user["proxy_curve"] = curve
            intermediate = {c["step"]: c["val_top1"] for c in curve}
        user["feasible"] = feasible
        t0 = start + dt.timedelta(seconds=20 * number)
        trials.append(create_trial(
            state=state, value=value, params=params, distributions=DISTRIBUTIONS, user_attrs=user,
            system_attrs={"constraints": user["constraint"]}, intermediate_values=intermediate,
        ))
        trials[-1].datetime_start = t0
        trials[-1].datetime_complete = t0 + dt.timedelta(seconds=rng.uniform(3, 19))
    study.add_trials(trials)
    return study


def _sample(dist, rng: random.Random):
    if isinstance(dist, CategoricalDistribution):
        return rng.choice(dist.choices)
    if isinstance(dist, IntDistribution):
        return rng.randint(dist.low, dist.high)
    steps = int(round((dist.high - dist.low) / dist.step))
    return dist.low + dist.step * rng.randint(0, steps)
