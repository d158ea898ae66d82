"""Durations and times as the operator's pages say them: a delivery's lag, seconds in words, moments, percentiles."""

from __future__ import annotations

import math
from datetime import datetime

from django.utils import timezone

from events.models import Delivery


def lag_seconds(delivery: Delivery) -> float | None:
    """Return the seconds from the event's commit to the delivery's completion, None while not done."""
    if delivery.completed_at is None or delivery.status != Delivery.Status.DONE:
        return None
    return max(0.0, (delivery.completed_at - delivery.created_at).total_seconds())


def format_seconds(seconds: float | None) -> str:
    """Say a duration the way a person reads it: 850 ms, 3.2 s, 4 min, 2.5 h."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_moment(moment: datetime | None, *, day_of: datetime | None = None) -> str:
    """Say a time to the second, its date too unless it is the same local day as day_of."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    if day_of is not None and timezone.localtime(day_of).date() == local.date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def percentile(values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of values (None for none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
