"""Accuracy estimates of architectures, and how far they can be trusted.

    from nasbench.estimate import estimate_model, get_estimator
    est = estimate_model(my_module, imgsz=224)        # the validated default
    est.top1, est.seconds, est.details

Every estimator reads the model alone (no names, no published numbers); see
``estimators.py`` for the registered ones and the default, ``validity.py`` for how they
are judged, ``benchmarks/results/accuracy_validity_cpu.md`` for the figures.
"""

from __future__ import annotations

from nasbench.estimate.base import Estimate, Estimator
from nasbench.estimate.estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    estimator_validity,
    for_family,
    get_estimator,
)

# Initial weights of a model being estimated: the seed the reference table was written with,
# so a preset estimated through `compare` gets exactly its reference signals.
ESTIMATE_SEED = 0


def estimate_model(model, imgsz: int, estimator: str | Estimator = "default", family: str | None = None) -> Estimate:
    """Estimate a freshly initialised ``model`` at ``imgsz`` px.

    ``family``: the zoo family the model belongs to, if any; fitted estimators then leave
    that family out of their fit, so their figure beside a published number is out of sample.
    """
    chosen = get_estimator(estimator) if isinstance(estimator, str) else estimator
    return for_family(chosen, family).estimate(model, imgsz)


def estimate_spec(spec, imgsz: int, estimator: str | Estimator = "default") -> Estimate:
    """Build ``spec`` (a ``zoo.ModelSpec``) with the estimate seed and estimate it."""
    import torch

    torch.manual_seed(ESTIMATE_SEED)
    model = spec.build()
    family = spec.family if spec.config is not None else None
    return estimate_model(model, imgsz, estimator, family)


VALIDITY_RESULTS = "benchmarks/results/accuracy_validity_cpu.md"
# Written by benchmarks/accuracy_validity.py: each registered estimator, fitted on every preset,
# scored on classic ImageNet models that are in no table of nasbench (tau; MAE when calibrated).
HELDOUT_VALIDITY = "heldout_validity.json"


def packaged_table(filename: str) -> dict | None:
    """A figures table the benchmark wrote into this package (None when it is not there)."""
    import json
    from importlib import resources

    stored = resources.files("nasbench.estimate").joinpath(filename)
    return json.loads(stored.read_text()) if stored.is_file() else None


def heldout_validity(name: str) -> dict | None:
    """The held-out figures of registered estimator ``name`` ({"models", "tau", "mae"}), or None."""
    recorded = packaged_table(HELDOUT_VALIDITY)
    if recorded is None:
        return None
    found = recorded["estimators"].get(name)
    return None if found is None else {"models": recorded["models"], **found}


def typical_error_points(estimator: str | Estimator, family: str | None) -> float | None:
    """How far est_top1 typically is from the truth, in top-1 points, for a model of ``family``
    (None: not a zoo family): the mean absolute error measured on models the fit never saw,
    leave-one-family-out for the zoo's families and on the held-out classic models otherwise."""
    chosen = get_estimator(estimator) if isinstance(estimator, str) else estimator
    if not chosen.calibrated:
        return None
    if family is not None:
        try:
            return estimator_validity(chosen).mae
        except (AttributeError, KeyError):  # a plugged-in estimator without reference values
            return None
    heldout = heldout_validity(chosen.name)
    return None if heldout is None else heldout["mae"]


def validity_line(estimator: str | Estimator = "default") -> str:
    """One line: what the estimator is and its figures against the published presets."""
    chosen = get_estimator(estimator) if isinstance(estimator, str) else estimator
    try:
        v = estimator_validity(chosen)
    except (AttributeError, KeyError):  # a plugged-in estimator without reference values
        return f"{chosen.name}: not validated against the published presets"
    how = "leave-one-family-out" if chosen.calibrated else "as a ranking"
    mae = f", mean abs. error {v.mae:.2f} points" if v.mae is not None else ""
    heldout = heldout_validity(chosen.name)
    outside = "" if heldout is None else (
        f"; on {heldout['models']} classic ImageNet models outside the zoo: Kendall tau {heldout['tau']:.2f}"
        + (f", mean abs. error {heldout['mae']:.2f} points" if heldout.get("mae") is not None else ""))
    return (f"{chosen.name} ({chosen.label}), {how} over {v.n} published presets: Kendall tau {v.tau:.2f}, "
            f"matched-cost pairs {v.pairs_right}/{v.pairs_total}{mae}{outside} ({VALIDITY_RESULTS})")


def proxy_validity_line(proxy: dict) -> str:
    """How short training like ``proxy`` (a study's proxy description) was validated: the
    recorded setting closest to it, against published top-1 (benchmarks/accuracy_validity.py)."""
    recorded = packaged_table("proxy_validity.json") or {"settings": {}, "source": ""}
    synthetic = bool(proxy.get("synthetic"))
    settings = [(name, s) for name, s in recorded["settings"].items() if (s["data"] == "synthetic") == synthetic]
    fidelity = ("its agreement with longer training on the same data is measured by benchmarks/rank_fidelity.py "
                "(benchmarks/results/proxy_rank_fidelity_cpu.md)")
    if not settings:
        return f"short training on {proxy.get('data')}: not validated against published top-1; {fidelity}"
    imgsz, steps = proxy.get("imgsz") or 32, proxy.get("steps") or 120
    name, s = min(settings, key=lambda item: (abs(item[1]["imgsz"] - imgsz), abs(item[1]["steps"] - steps)))
    return (f"the closest recorded setting ({name}: {s['data']}, {s['imgsz']} px, {s['steps']} steps) ordered "
            f"{s['n']} published presets at Kendall tau {s['tau']:.2f} against their ImageNet top-1, matched-cost "
            f"pairs {s['pairs_right']}/{s['pairs_total']} ({recorded['source']}); {fidelity}. Proxy top-1 says how "
            "fast a model learns this data, not its ImageNet accuracy")


def published_for(name: str):
    """The published record (top-1, eval px, source) of preset ``name``, or None."""
    from nasbench import zoo

    found = zoo.all_presets().get(name)
    return None if found is None else found[0].published.get(name)


__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "Estimate", "Estimator", "estimate_model", "estimate_spec",
           "estimator_validity", "for_family", "get_estimator", "heldout_validity", "proxy_validity_line",
           "published_for", "typical_error_points", "validity_line"]
