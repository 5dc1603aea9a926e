"""Curve helpers shared by the dashboard's charts and the version reports' plots."""

from __future__ import annotations

import math
from collections.abc import Sequence


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """Debiased exponential moving average; a gap restarts it."""
    out: list[float | None] = []
    last, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            last, n = 0.0, 0
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight ** n) if weight else v)
    return out
