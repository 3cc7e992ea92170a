"""The Python API: the same code paths as the commands, called from Python.

What is public is what ``nasbench/__init__.py`` exports (``create_model``, ``measure``,
``compare``, ``search``); everything else may change. Bad input raises ``UserError``
(one line, as the commands print it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
from torch import nn

from nasbench import zoo
from nasbench.comparison import CompareOptions, compare_models
from nasbench.detector import measure as det
from nasbench.metrics.latency import TimingPlan

ModelArg = str | nn.Module  # a preset, a config file, "file.py:factory", rtdetr_l, or a built model


def create_model(name: str, num_classes: int | None = None) -> nn.Module:
    """A freshly initialised model from a preset name, a config file (.yaml/.json),
    ``path/to/file.py:factory`` or ``rtdetr_l`` (the detector), in its training form."""
    return det.resolve(name).build(num_classes)


def _spec(model: ModelArg, position: int) -> zoo.ModelSpec:
    if isinstance(model, nn.Module):  # measured as given: a copy is not made, fusion changes it in place
        name = type(model).__name__ if position == 0 else f"{type(model).__name__}_{position}"
        return zoo.ModelSpec(name, "custom", None, "factory", None, factory=lambda: model)
    return det.resolve(model)


def compare(models: Sequence[ModelArg], *, imgsz: int | None = None, device: str = "auto", batch: int = 1,
            dtype: str = "fp32", threads: int | None = None, plan: TimingPlan | None = None, fuse: bool = True,
            crosscheck: bool = True, estimate: str | None = None, detector: bool = False,
            backend: str = "eager") -> pd.DataFrame:
    """The table of ``nasbench compare`` as a DataFrame (one row per model, the CSV's columns).

    ``estimate``: an estimator name (``"default"`` = the validated one) adds est_top1;
    ``detector``: each backbone inside RT-DETR, with the rtdetr_l row; ``backend``: eager,
    compile, onnxruntime or tensorrt. A built ``nn.Module`` is folded to its deploy form in
    place unless ``fuse=False``.
    """
    opts = CompareOptions(imgsz=imgsz, batch=batch, device=device, dtype=dtype, threads=threads, fuse=fuse,
                          crosscheck=crosscheck, plan=plan or TimingPlan(), detector=detector, estimator=estimate,
                          backend=backend)
    return compare_models([_spec(m, i) for i, m in enumerate(models)], opts).frame


def measure(model: ModelArg, **options) -> dict:
    """One model's row of ``compare`` (params, MACs, FLOPs = 2 x MACs, latency ...) as a dict;
    ``options`` are those of ``compare``."""
    return compare([model], **options).iloc[0].to_dict()


def search(space: str, budget: str, *, trials: int = 20, objective: str = "estimate", device: str = "auto",
           study: str | None = None, storage: str | None = None, out: str | Path | None = None,
           args: Sequence[str] = ()) -> optuna.Study:
    """Run (or resume) ``nasbench search`` and return its Optuna study.

    ``args`` passes any other option of the command (``["--no-presets", "--seed", "3"]``).
    The report is written as the command writes it (``out``, default reports/<study>/).
    """
    from nasbench.nas.command import STUDY_META_KEY
    from nasbench.nas.command import search as command
    from nasbench.storage import DEFAULT_STORAGE

    argv = ["--space", space, "--budget", budget, "--trials", str(trials), "--device", device,
            "--storage", storage or DEFAULT_STORAGE, "--objective", objective]
    argv += [*(["--study", study] if study else []), *(["--out", str(out)] if out else []), *args]
    with command.make_context("nasbench search", argv) as ctx:
        command.invoke(ctx)
        name = ctx.meta[STUDY_META_KEY]
    return optuna.load_study(study_name=name, storage=storage or DEFAULT_STORAGE)
