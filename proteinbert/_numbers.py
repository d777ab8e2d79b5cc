"""Reading numbers from labels, history rows and reports: one rule for what counts as a number."""

from __future__ import annotations

import math


def finite_float(value) -> float | None:
    """``value`` as a float if it is a finite number (or a string of one), else None.

    >>> finite_float("0.5"), finite_float(2), finite_float(""), finite_float(float("nan")), finite_float(None)
    (0.5, 2.0, None, None, None)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
