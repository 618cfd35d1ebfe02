"""Server-rendered SVG charts: no JavaScript, no CDN, and they survive being saved or mailed as HTML.

Each function returns markup-safe SVG; every label is escaped. Colours come
from CSS classes (`console.css`), with inline fallbacks so a report file opened
on its own still draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

BAR = "#3b6fb6"
LINE = "#c2572b"
GRID = "#d9dde3"
TEXT = "#4a5260"


def _tick(value: float) -> float:
    """Return the axis step for a maximum: 1, 2 or 5 times a power of ten, so that four steps reach it."""
    if value <= 0:
        return 0.25
    power = 10 ** math.floor(math.log10(value / 4))
    return next(step * power for step in (1, 2, 5, 10) if 4 * step * power >= value)


def _number(value: float, unit: str = "") -> str:
    if unit == "s":
        return duration(value)
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def duration(seconds: float | None) -> str:
    """Write a number of seconds as people read it: 45s, 12m, 3.5h, 2.1d."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    for limit, size, unit in ((60, 1, "s"), (3600, 60, "m"), (86400 * 2, 3600, "h")):
        if seconds < limit:
            value = seconds / size
            return f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
    return f"{seconds / 86400:.1f}d"


def _frame(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">')
    caption = f'<text x="0" y="13" font-size="13" font-weight="600" fill="{TEXT}">{escape(title)}</text>'
    return Markup(head + caption + "".join(body) + "</svg>")


def columns(labels: Sequence[str], values: Sequence[float | None], title: str, *, unit: str = "", line: bool = False,
            width: int = 640, height: int = 190, every: int = 1) -> Markup:
    """Draw one value per label as vertical bars (or a line, with gaps where a value is None); label every `every`-th column."""
    left, top, bottom = 44, 24, 22
    plot_w, plot_h = width - left - 8, height - top - bottom
    present = [v for v in values if v is not None]
    step_value = _tick(max(present, default=0))
    if unit != "s":
        step_value = max(1.0, step_value)  # counts: whole numbers on the axis
    top_value = 4 * step_value
    body = []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        body.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">{_number(top_value * i / 4, unit)}</text>')
    step = plot_w / max(len(values), 1)
    segments: list[list[str]] = [[]]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x, h = left + i * step, plot_h * (value or 0) / top_value
        tip = f"<title>{escape(label)}: {_number(value or 0, unit)}</title>"
        if line and value is None:
            segments.append([])
        elif line:
            segments[-1].append(f"{x + step / 2:.1f},{top + plot_h - h:.1f}")
            body.append(f'<circle cx="{x + step / 2:.1f}" cy="{top + plot_h - h:.1f}" r="2.5" fill="{LINE}">{tip}</circle>')
        elif value:
            body.append(f'<rect x="{x + step * 0.12:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.76:.1f}" height="{h:.1f}" fill="{BAR}">{tip}</rect>')
        if i % every == 0:
            body.append(f'<text x="{x + step / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="{TEXT}">{escape(label)}</text>')
    for points in segments:
        if len(points) > 1:
            body.insert(10, f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    if not any(present):
        body.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="{TEXT}">no data</text>')
    return _frame(width, height, title, body)


def ranking(items: Sequence[tuple[str, float]], title: str, *, width: int = 420, limit: int = 10) -> Markup:
    """Draw the largest items as labelled horizontal bars."""
    items = sorted(items, key=lambda item: -item[1])[:limit]
    row, top, label_w = 20, 24, 170
    height = top + row * max(len(items), 1) + 6
    most = max((value for _, value in items), default=0) or 1
    body = []
    for i, (label, value) in enumerate(items):
        y = top + i * row
        bar = (width - label_w - 60) * value / most
        short = label if len(label) <= 26 else label[:25] + "…"
        body.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" fill="{TEXT}"><title>{escape(label)}</title>{escape(short)}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(bar, 1):.1f}" height="{row - 6}" fill="{BAR}"/>')
        body.append(f'<text x="{label_w + bar + 4:.1f}" y="{y + 13}" fill="{TEXT}">{_number(value)}</text>')
    if not items:
        body.append(f'<text x="{width / 2}" y="{top + 12}" text-anchor="middle" fill="{TEXT}">no data</text>')
    return _frame(width, height, title, body)
