"""Bounds of the numeric options, checked as the command line is read.

Whole numbers use Typer's ``min=``/``max=`` (``--concurrency`` ``min=1``). A float
option's bound is one of these callbacks, because ``min=`` is inclusive (a timeout of
0 s is no timeout) and lets ``nan`` through. A value out of bounds is a usage error:
one line naming the option, exit 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import typer

Check = Callable[[float | None], float | None]


def _check(ok: Callable[[float], bool], bound: str) -> Check:
    def check(value: float | None) -> float | None:
        if value is not None and (math.isnan(value) or not ok(value)):
            raise typer.BadParameter(f"must be {bound}, not {value:g}")
        return value

    return check


#: A float that must be more than 0: a timeout, a budget, a time scale.
above_zero = _check(lambda v: v > 0, "> 0")
#: A float that may be 0 but not negative: a delay, a wait.
at_least_zero = _check(lambda v: v >= 0, ">= 0")
#: A float from 0 to 1: a sampling temperature.
zero_to_one = _check(lambda v: 0 <= v <= 1, "between 0 and 1")
