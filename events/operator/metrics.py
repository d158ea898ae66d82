"""Prometheus metrics of the event layer, computed from the database at scrape time.

The web runs several processes: counters kept in one of them would each tell a part. The rows are
the truth, so every scrape counts them (aggregate queries, one per metric family). Counts of done
deliveries and their attempts drop when retention deletes old rows; Prometheus reads a drop as a
counter reset, so rate() stays right.
"""

from __future__ import annotations

import bisect
import hmac
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from events.broker import DEAD_LETTER_KEY
from events.doorbells import broker_redis
from events.models import ConsumerControl, Delivery, DeliveryAttempt, Event, SweepRun
from events.registry import consumers
from events.signals import event_signals
from events.sweep import NEVER

# Upper bounds (seconds) of the delivery lag histogram: from a fast in-process effect to an hour of retries.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
# The lag histogram covers deliveries completed within this window.
LAG_WINDOW = timedelta(hours=1)


class RelayCollector(Collector):
    """Collects the ledger's numbers per consumer (every consumer in the registry, zero when it has no rows)."""

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, queried now."""
        names = [declared.name for declared in consumers()]
        now = timezone.now()
        yield self._events()
        yield from self._deliveries(names, now=now)
        yield self._attempts(names)
        yield self._lag(names, now=now)
        yield self._paused(names)
        yield self._sweep()
        dead_letters = self._dead_letters()
        if dead_letters is not None:
            yield dead_letters

    def _events(self) -> Metric:
        family = CounterMetricFamily("relay_events", "Domain events emitted (stored), by event name.", labels=["name"])
        counts = dict(Event.objects.order_by().values_list("name").annotate(count=Count("pk")))
        # Every event this code can publish has its series from the start, at 0 until one is.
        for name in sorted(set(event_signals) | set(counts)):
            family.add_metric([name], counts.get(name, 0))
        return family

    def _deliveries(self, names: list[str], *, now: datetime) -> Iterator[Metric]:
        pending = Q(status=Delivery.Status.PENDING)
        running = pending & Q(lease_until__gt=now)
        due = pending & ~Q(lease_until__gt=now) & Q(due_at__lte=now)
        rows = (
            Delivery.objects.order_by()
            .values("consumer")
            .annotate(
                done=Count("pk", filter=Q(status=Delivery.Status.DONE)),
                failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
                due=Count("pk", filter=due),
                running=Count("pk", filter=running),
                waiting=Count("pk", filter=pending & ~Q(lease_until__gt=now) & ~Q(due_at__lte=now)),
                oldest_due=Min("due_at", filter=due),
            )
        )
        by_consumer = {row["consumer"]: row for row in rows}
        empty = {"done": 0, "failed": 0, "due": 0, "running": 0, "waiting": 0, "oldest_due": None}
        totals = CounterMetricFamily(
            "relay_deliveries", "Deliveries completed or dead-lettered, by consumer.", labels=["consumer", "status"]
        )
        pending_gauge = GaugeMetricFamily(
            "relay_deliveries_pending",
            "Pending deliveries by consumer: due (may run now), running (held by a live lease) or waiting"
            " (a retry scheduled later).",
            labels=["consumer", "state"],
        )
        failed_gauge = GaugeMetricFamily(
            "relay_deliveries_failed", "Failed deliveries (dead letters) by consumer.", labels=["consumer"]
        )
        oldest = GaugeMetricFamily(
            "relay_oldest_due_delivery_age_seconds",
            "Seconds since the oldest due pending delivery of a consumer became due (0 when none is due).",
            labels=["consumer"],
        )
        for consumer in _with_unknown(names, by_consumer):
            row = by_consumer.get(consumer, empty)
            totals.add_metric([consumer, "done"], row["done"])
            totals.add_metric([consumer, "failed"], row["failed"])
            pending_gauge.add_metric([consumer, "due"], row["due"])
            pending_gauge.add_metric([consumer, "running"], row["running"])
            pending_gauge.add_metric([consumer, "waiting"], row["waiting"])
            failed_gauge.add_metric([consumer], row["failed"])
            age = (now - row["oldest_due"]).total_seconds() if row["oldest_due"] is not None else 0.0
            oldest.add_metric([consumer], max(age, 0.0))
        yield from (totals, pending_gauge, failed_gauge, oldest)

    def _attempts(self, names: list[str]) -> Metric:
        family = CounterMetricFamily(
            "relay_delivery_attempts", "Delivery attempts by consumer and outcome.", labels=["consumer", "outcome"]
        )
        counts = {
            (consumer, outcome): count
            for consumer, outcome, count in DeliveryAttempt.objects.order_by()
            .values_list("delivery__consumer", "outcome")
            .annotate(count=Count("pk"))
        }
        for consumer in _with_unknown(names, {consumer for consumer, _ in counts}):
            for outcome in DeliveryAttempt.Outcome.values:
                family.add_metric([consumer, outcome], counts.get((consumer, outcome), 0))
        return family

    def _lag(self, names: list[str], *, now: datetime) -> Metric:
        family = HistogramMetricFamily(
            "relay_delivery_lag_seconds",
            "Seconds from a delivery's creation to its completion, deliveries completed in the last hour.",
            labels=["consumer"],
        )
        # Per row, but only the last hour's completions, and only three columns of each.
        completed = Delivery.objects.filter(status=Delivery.Status.DONE, completed_at__gte=now - LAG_WINDOW)
        counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LAG_BUCKETS) + 1))
        sums: dict[str, float] = defaultdict(float)
        for consumer, created_at, completed_at in (
            completed.order_by().values_list("consumer", "created_at", "completed_at").iterator(chunk_size=2000)
        ):
            lag = max((completed_at - created_at).total_seconds(), 0.0)
            counts[consumer][bisect.bisect_left(LAG_BUCKETS, lag)] += 1
            sums[consumer] += lag
        for consumer in _with_unknown(names, counts):
            cumulative, buckets = 0, []
            for bound, count in zip((*LAG_BUCKETS, float("inf")), counts[consumer], strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            family.add_metric([consumer], buckets, sums[consumer])
        return family

    def _paused(self, names: list[str]) -> Metric:
        family = GaugeMetricFamily(
            "relay_consumer_paused", "1 while an operator has paused the consumer, else 0.", labels=["consumer"]
        )
        paused = set(ConsumerControl.objects.filter(paused=True).values_list("consumer", flat=True))
        for consumer in _with_unknown(names, paused):
            family.add_metric([consumer], 1 if consumer in paused else 0)
        return family

    def _sweep(self) -> Metric:
        family = GaugeMetricFamily(
            "relay_sweep_last_run_timestamp_seconds",
            "When the sweep last ran (Unix time; the seed time 2000-01-01 until it first runs).",
        )
        started_at = SweepRun.objects.filter(pk=1).values_list("started_at", flat=True).first()
        family.add_metric([], (started_at or NEVER).timestamp())
        return family

    def _dead_letters(self) -> Metric | None:
        try:
            length = broker_redis().llen(DEAD_LETTER_KEY)
        except (redis.RedisError, OSError):
            return None  # Redis does not answer within the check timeout: leave the metric out of this scrape.
        family = GaugeMetricFamily(
            "relay_broker_dead_letters", "Unreadable broker messages set aside (manage.py broker_dead_letters)."
        )
        family.add_metric([], length)
        return family


def _with_unknown(names: list[str], seen: Iterable[str]) -> list[str]:
    """The registry's consumers, then any other name found in the rows (a consumer since removed)."""
    return names + sorted(set(seen) - set(names))


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


registry = CollectorRegistry(auto_describe=False)
registry.register(RelayCollector())


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the metrics in Prometheus' text format, to whoever has METRICS_TOKEN when it is set."""
    token = settings.METRICS_TOKEN
    if not token:
        if settings.METRICS_REQUIRE_TOKEN:
            raise Http404
    elif not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
