"""The dashboard's SVG charts: ticks a person reads, units on the axes, gaps where there is no data."""

from __future__ import annotations

import re

from events.operator.charts import BOTTOM, HEIGHT, Series, lines, stacked_bars, ticks


def tick_labels(svg: str) -> list[str]:
    return re.findall(r'class="relay-tick">([^<]*)</text>', svg)


def test_counts_are_ticked_in_whole_numbers() -> None:
    assert ticks(3, integer=True) == [0, 1, 2, 3]
    assert ticks(1, integer=True) == [0, 1]
    assert ticks(47, integer=True) == [0, 20, 40, 60]
    assert ticks(0.3) == [0, 0.1, 0.2, 0.3]


def test_a_chart_of_counts_names_its_unit_and_never_ticks_a_fraction() -> None:
    svg = stacked_bars(
        title="Events",
        labels=["1 Dec", "2 Dec"],
        series=[Series("user.created", [3, 1])],
        axis="events/day",
        integer=True,
    )

    assert tick_labels(svg) == ["0", "1", "2", "3"]
    assert ">events/day</text>" in svg


def test_a_line_leaves_a_gap_where_there_is_no_data() -> None:
    svg = lines(
        title="Lag",
        labels=["a", "b", "c", "d", "e"],
        series=[Series("crm", [2.0, 4.0, None, None, 1.0])],
        axis="lag p95, s",
        unit=" s",
    )

    baseline = f"{HEIGHT - BOTTOM:.1f}"
    points = re.findall(r'points="([^"]*)"', svg)
    assert len(points) == 1 and len(points[0].split()) == 2  # a and b joined; c and d not drawn
    assert svg.count("<circle") == 1  # e alone, a dot
    assert f",{baseline}" not in points[0] and f'cy="{baseline}"' not in svg
    assert tick_labels(svg)[-1] == "4 s" and ">lag p95, s</text>" in svg
