"""Line charts as inline SVG, rendered on the server: no JavaScript library, no CDN, works offline.

A series is drawn as faint raw points plus an exponentially smoothed line (TensorBoard's smoothing), broken where
data is missing (a None value ends a segment) instead of joining across the gap; a reference value (the production
version, a random baseline) is a dashed horizontal line. Tick positions come from matplotlib's `MaxNLocator` (round
steps of 1, 2, 2.5 or 5 times a power of ten; matplotlib is already a dependency for the reports' PNGs), and each
axis prints them with as many decimals as its step needs, so labels are monotonic, keep their sign and differ.

Why not a JavaScript charting library: these charts are static once rendered, the server already has the data, and
an SVG string is checked by plain tests; a library would add a script, a data channel and a second rendering path for
the same lines, and the pages would be blank without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from ..evaluation.curves import smooth

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#be185d")
Point = tuple[float, float | None]
MAX_POINTS = 800


@dataclass
class Series:
    name: str
    points: Sequence[Point]
    color: str = ""


@dataclass
class Chart:
    title: str
    series: list[Series] = field(default_factory=list)
    reference: tuple[str, float] | None = None  # (label, y)
    x_label: str = "step"
    smoothing: float = 0.6
    width: int = 640
    height: int = 240


def _thin(points: list[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most about `limit` points (every k-th, the last always kept): a chart is 640 pixels wide."""
    if len(points) <= limit:
        return points
    k = math.ceil(len(points) / limit)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round values covering [lo, hi] (the first at or below lo, the last at or above hi)."""
    from matplotlib.ticker import MaxNLocator

    if hi <= lo:
        half = max(abs(lo) * 0.01, 1e-9) if lo else 0.5
        lo, hi = lo - half, hi + half
    values = [0.0 if t == 0 else float(t) for t in MaxNLocator(nbins=count - 1, steps=[1, 2, 2.5, 5, 10])
              .tick_values(lo, hi)]
    step = values[1] - values[0]
    while values[-1] < hi:  # far from zero the locator's rounding can stop a hair short of the data
        values.append(values[-1] + step)
    while values[0] > lo:
        values.insert(0, values[0] - step)
    return values


def labels(values: Sequence[float]) -> list[str]:
    """The shortest text for each tick that still reads back as its value: as many decimals as the step needs,
    thousands separated; scientific notation beyond 10^7 or below a step of 10^-5."""
    if not values:
        return []
    step = min((b - a for a, b in zip(values, values[1:], strict=False)), default=abs(values[0]) or 1.0)
    big = max(abs(v) for v in values)
    sci = big >= 1e7 or step < 1e-5
    for digits in range(13):
        out = [f"{v:.{digits}e}" if sci else f"{v:,.{digits}f}" for v in values]
        if all(abs(float(t.replace(",", "")) - v) <= step * 1e-3 for t, v in zip(out, values, strict=True)):
            return [t.replace("-0.", "0.") if float(t.replace(",", "")) == 0 else t for t in out]
    return [repr(v) for v in values]


def render(chart: Chart) -> str:
    W, H, right, top, bottom = chart.width, chart.height, 12, 24, 28
    finite = [(x, y) for s in chart.series for x, y in s.points if y is not None and math.isfinite(y)]
    head = (f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(chart.title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="8" y="16" class="chart-title">{escape(chart.title)}</text>')
    if not finite:
        return head + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="chart-empty">no data yet</text></svg>'
    xs = [x for x, _ in finite]
    ys = [y for _, y in finite] + ([chart.reference[1]] if chart.reference else [])
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    y_ticks = ticks(min(ys), max(ys))
    y0, y1 = min(y_ticks[0], min(ys)), max(y_ticks[-1], max(ys))  # round values (up to float noise)
    y_labels = labels(y_ticks)
    left = 10 + 7 * max(len(t) for t in y_labels)  # room for the longest label at 11px
    x_ticks = [x for x in ticks(x0, x1, 4) if x0 <= x <= x1] or [x0, x1]

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (W - left - right)

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom)

    parts = [head]
    for y, text in zip(y_ticks, y_labels, strict=True):  # grid and y ticks
        parts.append(f'<line x1="{left}" x2="{W - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end" class="tick">{text}</text>')
    for x, text in zip(x_ticks, labels(x_ticks), strict=True):
        anchor = "start" if px(x) < left + 20 else "end" if px(x) > W - right - 20 else "middle"
        parts.append(f'<text x="{px(x):.1f}" y="{H - 8}" text-anchor="{anchor}" class="tick">{text}</text>')
    if chart.reference:
        label, y = chart.reference
        parts.append(f'<line x1="{left}" x2="{W - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="reference"/>'
                     f'<text x="{W - right}" y="{py(y) - 4:.1f}" text-anchor="end" class="tick">{escape(label)}</text>')
    for i, s in enumerate(chart.series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = _thin(sorted(s.points, key=lambda p: p[0]))
        for x, y in pts:
            if y is not None and math.isfinite(y):
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="1.6" fill="{color}" opacity="0.35"/>')
        segment: list[str] = []
        for (x, _), y in zip(pts, smooth([y for _, y in pts], chart.smoothing), strict=True):
            if y is None:
                if len(segment) > 1:
                    parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" '
                                 'stroke-width="2"/>')
                segment = []
                continue
            segment.append(f"{px(x):.1f},{py(y):.1f}")
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{left + 8 + 140 * i}" y="{top + 12}" class="legend" fill="{color}">'
                     f'{escape(s.name[:24])}</text>')
    parts.append("</svg>")
    return "".join(parts)
