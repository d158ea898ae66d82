"""The dashboard: the catalogue from the running code, each consumer's state and lag, and three charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate, TruncMinute
from django.utils import timezone

from events import deadlines, flow
from events.breaker import CircuitBreaker
from events.circuit import circuits
from events.conf import events_settings
from events.ledger import paused_consumers
from events.models import ConsumerControl, Delivery, Event
from events.operator import charts
from events.operator.measures import format_seconds, percentile
from events.registry import consumers_of
from events.signals import EventSignal, event_signals
from events.sweep import last_sweep

LAG_WINDOW = timedelta(hours=1)
# The lag percentiles are over the newest deliveries of the window, at most this many per consumer.
LAG_SAMPLE = 5000
EVENT_DAYS = 14


def consumer_states(now: datetime) -> dict[str, dict[str, Any]]:
    """Count each consumer's deliveries by state, in one grouped query."""
    pending = Q(status=Delivery.Status.PENDING)
    running = pending & Q(lease_until__gt=now)
    rows = Delivery.objects.values("consumer").annotate(
        due=Count("id", filter=pending & Q(due_at__lte=now) & ~Q(lease_until__gt=now)),
        waiting=Count("id", filter=pending & Q(due_at__gt=now) & ~Q(lease_until__gt=now)),
        running=Count("id", filter=running),
        done=Count("id", filter=Q(status=Delivery.Status.DONE)),
        failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
        expired=Count("id", filter=Q(status=Delivery.Status.EXPIRED)),
        oldest_due=Min("due_at", filter=pending & Q(due_at__lte=now)),
    )
    return {row["consumer"]: row for row in rows.order_by()}


def lag_samples(name: str, now: datetime) -> list[tuple[datetime, float]]:
    """Return (completed at, lag in seconds) of the consumer's newest deliveries done within the window."""
    rows = (
        Delivery.objects.filter(consumer=name, status=Delivery.Status.DONE, completed_at__gte=now - LAG_WINDOW)
        .order_by("-completed_at")
        .values_list("created_at", "completed_at")[:LAG_SAMPLE]
    )
    return [(completed, max(0.0, (completed - created).total_seconds())) for created, completed in rows]


def _catalogue_order(item: tuple[str, EventSignal]) -> tuple[bool, str]:
    """Sort the domain events by name, the event layer's own (operators' actions) after them."""
    name, signal = item
    return signal.event_class.__module__.split(".")[0] == "events", name


def overview() -> dict[str, Any]:
    """Return everything the dashboard shows."""
    now = timezone.now()
    states = consumer_states(now)
    paused = paused_consumers()
    tripped = circuits()
    catalogue: list[dict[str, Any]] = []
    lag_by_consumer: dict[str, list[tuple[datetime, float]]] = {}
    for event_name, signal in sorted(event_signals.items(), key=_catalogue_order):
        rows = []
        for declared in consumers_of(signal):
            samples = lag_by_consumer[declared.name] = lag_samples(declared.name, now)
            lags = [lag for _completed, lag in samples]
            state = states.get(declared.name, {})
            oldest_due = state.get("oldest_due")
            rows.append(
                {
                    "name": declared.name,
                    "task": declared.task.name,
                    "queue": declared.queue,
                    "retry": declared.retry.describe(),
                    "mode": ("in the database's transaction" if declared.atomic else "outside the database")
                    + (", in bulk" if declared.many else ""),
                    "batch_size": declared.batch_size,
                    "flow": flow.describe(declared),
                    "paused": declared.name in paused,
                    **_circuit(declared.breaker, tripped.get(declared.name)),
                    "due": state.get("due", 0),
                    "waiting": state.get("waiting", 0),
                    "running": state.get("running", 0),
                    "done": state.get("done", 0),
                    "failed": state.get("failed", 0),
                    "expired": state.get("expired", 0),
                    "deadline": deadlines.describe(declared.deadline) if declared.deadline else "",
                    "overdue": format_seconds((now - oldest_due).total_seconds()) if oldest_due else "",
                    "lag_p50": format_seconds(percentile(lags, 0.5)),
                    "lag_p95": format_seconds(percentile(lags, 0.95)),
                    "lag_count": len(lags),
                }
            )
        cls = signal.event_class
        path = f"{cls.__module__}.{cls.__qualname__}"
        catalogue.append({"event": event_name, "event_class": path, "consumers": rows})
    # Rows of a consumer no longer declared (renamed, removed) stay visible until replayed or pruned.
    declared_names = {row["name"] for entry in catalogue for row in entry["consumers"]}
    undeclared = [state for name, state in sorted(states.items()) if name not in declared_names]
    swept_at = last_sweep()
    sweep_age = None if swept_at is None else (now - swept_at).total_seconds()
    return {
        "catalogue": catalogue,
        "undeclared": undeclared,
        "swept_at": swept_at,
        "sweep_age": format_seconds(sweep_age),
        "sweep_late": sweep_age is None or sweep_age > 3 * events_settings().sweep_interval,
        "sweep_interval": events_settings().sweep_interval,
        "lag_window_minutes": int(LAG_WINDOW.total_seconds() // 60),
        "chart_events": _events_per_day(now),
        "chart_throughput": _deliveries_per_minute(now),
        "chart_lag": _lag_over_time(now, lag_by_consumer),
    }


def _circuit(breaker: CircuitBreaker | None, control: ConsumerControl | None) -> dict[str, Any]:
    """Say a consumer's circuit: closed, open or probing, since when, and when its next probe goes."""
    if control is None:
        return {
            "circuit": "closed",
            "circuit_since": None,
            "next_probe": None,
            "breaker": breaker.describe() if breaker else "",
        }
    return {
        "circuit": control.circuit,
        "circuit_since": control.circuit_changed_at,
        "next_probe": control.probe_at,
        "breaker": breaker.describe() if breaker else "",
    }


def _events_per_day(now: datetime) -> str:
    today = timezone.localdate(now)
    days = [today - timedelta(days=offset) for offset in range(EVENT_DAYS - 1, -1, -1)]
    counts: dict[str, dict[Any, int]] = defaultdict(dict)
    rows = (
        Event.objects.filter(occurred_at__gte=now - timedelta(days=EVENT_DAYS))
        .annotate(day=TruncDate("occurred_at"), source=KeyTextTransform("source", "payload"))
        .values("name", "day", "source")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        label = f"{row['name']} · {row['source']}" if row["source"] else row["name"]
        counts[label][row["day"]] = row["n"]
    return charts.stacked_bars(
        title=f"Events per day by source, last {EVENT_DAYS} days",
        labels=[day.strftime("%d %b") for day in days],
        series=[charts.Series(label, [by_day.get(day, 0) for day in days]) for label, by_day in sorted(counts.items())],
        axis="events/day",
        integer=True,
    )


def _minutes(now: datetime, count: int, step: int = 1) -> list[datetime]:
    end = now.replace(second=0, microsecond=0)
    return [end - timedelta(minutes=offset) for offset in range((count - 1) * step, -1, -step)]


def _deliveries_per_minute(now: datetime) -> str:
    minutes = _minutes(now, 60)
    counts: dict[str, dict[datetime, int]] = defaultdict(dict)
    rows = (
        Delivery.objects.filter(status=Delivery.Status.DONE, completed_at__gte=minutes[0])
        .annotate(minute=TruncMinute("completed_at"))
        .values("consumer", "minute")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["consumer"]][row["minute"]] = row["n"]
    return charts.lines(
        title="Deliveries done per minute by consumer, last hour",
        labels=[timezone.localtime(minute).strftime("%H:%M") for minute in minutes],
        series=[
            charts.Series(name, [by_minute.get(minute, 0) for minute in minutes])
            for name, by_minute in sorted(counts.items())
        ],
        axis="deliveries/min",
        integer=True,
    )


def _lag_over_time(now: datetime, samples: dict[str, list[tuple[datetime, float]]]) -> str:
    buckets = _minutes(now, 12, step=5)
    series = []
    for name, rows in sorted(samples.items()):
        by_bucket: dict[int, list[float]] = defaultdict(list)
        for completed, lag in rows:
            index = min(len(buckets) - 1, max(0, int((completed - buckets[0]).total_seconds() // 300)))
            by_bucket[index].append(lag)
        if by_bucket:
            # A bucket with no delivery done has no lag: None leaves a gap, where 0 would claim "instant".
            series.append(
                charts.Series(name, [percentile(by_bucket.get(index, []), 0.95) for index in range(len(buckets))])
            )
    return charts.lines(
        title="Lag from commit to done (p95 per 5 minutes), last hour",
        labels=[timezone.localtime(bucket).strftime("%H:%M") for bucket in buckets],
        series=series,
        axis="lag p95, s",
        unit=" s",
    )
