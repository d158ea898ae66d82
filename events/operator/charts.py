"""Small SVG charts rendered on the server: no script, no CDN, they work offline and under a strict CSP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Series:
    """One named line or stack of bars: a value per x label."""

    name: str
    values: Sequence[float]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return float(((int(value) // step) + 1) * step)


def _frame(labels: Sequence[str], top: float, unit: str, title: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="relay-chart">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
            f"{escape(_short(top * fraction))}{escape(unit)}</text>"
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


def stacked_bars(*, title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> SafeString:
    """A bar per label, stacked by series; an empty chart says so."""
    totals = [sum(line.values[index] for line in series) for index in range(len(labels))]
    if not labels or not any(totals):
        return mark_safe(f'<p class="relay-empty">{escape(title)}: nothing yet.</p>')
    top = _nice_max(max(totals))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / len(labels)
    parts = _frame(labels, top, unit, title)
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


def lines(*, title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> SafeString:
    """A line per series over the labels; an empty chart says so."""
    highest = max((value for line in series for value in line.values), default=0)
    if not labels or not highest:
        return mark_safe(f'<p class="relay-empty">{escape(title)}: nothing yet.</p>')
    top = _nice_max(highest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(labels, top, unit, title)
    for colour_index, line in enumerate(series):
        points = " ".join(
            f"{LEFT + plot_w * (index + 0.5) / len(labels):.1f},{TOP + plot_h - plot_h * value / top:.1f}"
            for index, value in enumerate(line.values)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke-width="2" '
            f'stroke="{PALETTE[colour_index % len(PALETTE)]}"><title>{escape(line.name)}</title></polyline>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts) + _legend(series))
