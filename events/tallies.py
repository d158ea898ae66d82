"""Counts that only grow, kept beside the rows they count: what /metrics serves as counters and histograms."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping

from django.db import connection

from events.models import Tally

EVENTS = "events"  # by event name
DELIVERIES = "deliveries"  # by consumer and how a delivery ended: done, failed
ATTEMPTS = "attempts"  # by consumer and outcome, once an attempt has one (running is a state, not counted)
LAG = "lag"  # by consumer and bucket: deliveries done within each upper bound (not cumulative here)
LAG_SUM = "lag_sum"  # by consumer: the seconds of every done delivery's lag
SLOWED = "slowed"  # by consumer: refusals for the provider's quota (429, SMTP "too many"), each slowing it

# Upper bounds (seconds) of the delivery lag histogram: from a fast in-process effect to an hour of retries.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
INF = "+Inf"

Series = tuple[str, str, str]


def add(counts: Mapping[Series, float]) -> None:
    """Add counts to their series in one statement, in the current transaction."""
    rows = sorted((series, amount) for series, amount in counts.items() if amount)
    if not rows:
        return
    table = connection.ops.quote_name(Tally._meta.db_table)
    # An upsert that adds (Django's update_conflicts can only overwrite). Rows in one order, so
    # two transactions adding to the same series never deadlock.
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (metric, consumer, label, value) VALUES {values} "  # noqa: S608 (no input in it)
            f"ON CONFLICT (metric, consumer, label) DO UPDATE SET value = {table}.value + EXCLUDED.value",
            [field for (metric, consumer, label), amount in rows for field in (metric, consumer, label, amount)],
        )


def lag_bucket(seconds: float) -> str:
    """Return the label of the histogram bucket a lag falls in: its upper bound."""
    index = bisect.bisect_left(LAG_BUCKETS, seconds)
    return repr(LAG_BUCKETS[index]) if index < len(LAG_BUCKETS) else INF


def lags(consumer: str, seconds: Iterable[float]) -> Counter[Series]:
    """Return the tallies of done deliveries' lags: a bucket each, and their sum."""
    counts: Counter[Series] = Counter()
    for lag in seconds:
        lag = max(lag, 0.0)
        counts[(LAG, consumer, lag_bucket(lag))] += 1
        counts[(LAG_SUM, consumer, "")] += lag
    return counts


def read() -> dict[Series, float]:
    """Return every series' count."""
    return {
        (metric, consumer, label): value
        for metric, consumer, label, value in Tally.objects.values_list("metric", "consumer", "label", "value")
    }
