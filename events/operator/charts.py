"""Small SVG charts rendered on the server: no script, no CDN, they work offline and under a strict CSP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT = 640, 230
# The top margin holds the y axis' name and unit, above its highest tick.
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 28


@dataclass(frozen=True)
class Series:
    """One named line or stack of bars: a value per x label, None where there is no data."""

    name: str
    values: Sequence[float | None]


def ticks(highest: float, *, integer: bool = False) -> list[float]:
    """Return the y axis' ticks from 0 past highest, 1-2-5 steps apart (whole numbers for counts)."""
    if highest <= 0:
        return [0.0, 1.0]
    rough = highest / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(factor * magnitude for factor in (1, 2, 5, 10) if factor * magnitude >= rough)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    count = math.ceil(highest / step - 1e-9)
    return [round(index * step, 10) for index in range(count + 1)]


def _frame(labels: Sequence[str], scale: list[float], unit: str, title: str, axis: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = scale[-1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="relay-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="12" font-size="11" fill="#555" class="relay-axis">{escape(axis)}</text>',
    ]
    for value in scale:
        y = TOP + plot_h * (1 - value / top)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555" class="relay-tick">'
            f"{escape(_short(value))}{escape(unit)}</text>"
        )
    shown = max(1, math.ceil(len(labels) / 7))  # about seven labels: they must not overlap
    for index, label in enumerate(labels):
        if index % shown == 0:
            x = LEFT + plot_w * (index + 0.5) / max(1, len(labels))
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#555">'
                f"{escape(label)}</text>"
            )
    return parts


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.2f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}"


def _legend(series: Sequence[Series]) -> str:
    # A tiny SVG square, not a styled span: a strict CSP (style-src 'self') drops inline styles.
    items = "".join(
        f'<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        f'fill="{PALETTE[index % len(PALETTE)]}"/></svg> {escape(line.name)}</li>'
        for index, line in enumerate(series)
    )
    return f'<ul class="relay-legend">{items}</ul>'


def stacked_bars(
    *, title: str, labels: Sequence[str], series: Sequence[Series], axis: str, unit: str = "", integer: bool = False
) -> SafeString:
    """A bar per label, stacked by series, the y axis named axis; an empty chart says so."""
    totals = [sum(line.values[index] or 0 for line in series) for index in range(len(labels))]
    if not labels or not any(totals):
        return mark_safe(f'<p class="relay-empty">{escape(title)}: nothing yet.</p>')
    scale = ticks(max(totals), integer=integer)
    top = scale[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / len(labels)
    parts = _frame(labels, scale, unit, title, axis)
    for index, label in enumerate(labels):
        base = 0.0
        for colour_index, line in enumerate(series):
            value = line.values[index]
            if not value:
                continue
            height = plot_h * value / top
            y = TOP + plot_h - plot_h * base / top - height
            parts.append(
                f'<rect x="{LEFT + bar_w * index + bar_w * 0.15:.1f}" y="{y:.1f}" width="{bar_w * 0.7:.1f}" '
                f'height="{height:.1f}" fill="{PALETTE[colour_index % len(PALETTE)]}">'
                f"<title>{escape(label)} · {escape(line.name)}: {escape(_short(value))}{escape(unit)}</title></rect>"
            )
            base += value
    parts.append("</svg>")
    return mark_safe("".join(parts) + _legend(series))


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Split values into runs of consecutive data points: a line never crosses a label without data."""
    runs: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((index, value))
    return [run for run in runs if run]


def lines(
    *, title: str, labels: Sequence[str], series: Sequence[Series], axis: str, unit: str = "", integer: bool = False
) -> SafeString:
    """A line per series over the labels, the y axis named axis, a gap where a value is None; empty says so."""
    highest = max((value for line in series for value in line.values if value is not None), default=None)
    if not labels or highest is None:
        return mark_safe(f'<p class="relay-empty">{escape(title)}: nothing yet.</p>')
    scale = ticks(highest, integer=integer)
    top = scale[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(labels, scale, unit, title, axis)
    for colour_index, line in enumerate(series):
        colour = PALETTE[colour_index % len(PALETTE)]
        for run in _runs(line.values):
            points = [
                (LEFT + plot_w * (index + 0.5) / len(labels), TOP + plot_h - plot_h * value / top)
                for index, value in run
            ]
            if len(points) == 1:
                # A lone value between gaps is a dot: a one-point polyline draws nothing.
                (x, y), [(index, value)] = points[0], run
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(line.name)} · '
                    f"{escape(labels[index])}: {escape(_short(value))}{escape(unit)}</title></circle>"
                )
                continue
            drawn = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline points="{drawn}" fill="none" stroke-width="2" '
                f'stroke="{colour}"><title>{escape(line.name)}</title></polyline>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts) + _legend(series))
