"""Line charts as inline SVG, rendered on the server: no JavaScript library, no CDN, works offline.

A series is drawn as faint raw points plus an exponentially smoothed line (TensorBoard's smoothing), broken where
data is missing (a None value ends a segment) instead of joining across the gap; a reference value (the production
version, a random baseline) is a dashed horizontal line.
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


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def render(chart: Chart) -> str:
    W, H, left, right, top, bottom = chart.width, chart.height, 56, 12, 24, 28
    finite = [(x, y) for s in chart.series for x, y in s.points if y is not None and math.isfinite(y)]
    head = (f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(chart.title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="{left}" y="16" class="chart-title">'
            f'{escape(chart.title)}</text>')
    if not finite:
        return head + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="chart-empty">no data yet</text></svg>'
    xs = [x for x, _ in finite]
    ys = [y for _, y in finite] + ([chart.reference[1]] if chart.reference else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (W - left - right)

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom)

    parts = [head]
    for i in range(5):  # grid and y ticks
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{W - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end" class="tick">{_fmt(y)}</text>')
    for x, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):
        parts.append(f'<text x="{px(x):.1f}" y="{H - 8}" text-anchor="{anchor}" class="tick">{_fmt(x)}</text>')
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
