"""Click parameter types shared by the commands."""

from __future__ import annotations

import math

import click


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and ±inf: ``float("nan")`` passes every range
    comparison, and ``--lr inf`` would train to NaN without a word."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# The runtimes `compare`/`search` time on (nasbench.metrics.backends implements them); here so
# the command line can list them without importing torch.
BACKENDS = ("eager", "compile", "onnxruntime", "tensorrt")
BACKEND_HELP = ("Runtime the models are timed on: eager PyTorch, torch.compile (inductor; compile time not timed), "
                "onnxruntime (exported with torch.onnx, needs pip install 'nasbench[onnx]') or tensorrt "
                "(torch_tensorrt on a CUDA device). Each backend's output is checked against eager first; a model "
                "a backend cannot run gets one line and the others are still timed.")
