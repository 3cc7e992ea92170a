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
