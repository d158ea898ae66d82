"""Prometheus metrics of the event layer: counters and the lag histogram from the tallies, gauges from the rows.

Counters only grow: pruning deletes old rows and the web runs several processes, so each count is
kept in the database (events.tallies), added to in the transaction of the change it counts, and
every process serves the same numbers. Gauges (pending, failed, paused) are counted from the rows
that are still open at each scrape, which are few.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from datetime import datetime

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

from events import tallies
from events.broker import DEAD_LETTER_KEY
from events.circuit import CLOSED
from events.doorbells import broker_redis
from events.models import ConsumerControl, Delivery, DeliveryAttempt, SweepRun
from events.registry import consumers
from events.signals import event_signals
from events.sweep import NEVER
from events.worker import consumed, expected_queues


class RelayCollector(Collector):
    """Collects the ledger's numbers per consumer (every consumer in the registry, zero when it has no rows)."""

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, queried now."""
        names = [declared.name for declared in consumers()]
        now = timezone.now()
        counts = tallies.read()
        yield self._events(counts)
        yield from self._deliveries(names, counts, now=now)
        yield self._attempts(names, counts)
        yield self._lag(names, counts)
        # One query for both switches: an operator's pause and the breaker's circuit.
        controls = list(
            ConsumerControl.objects.filter(Q(paused=True) | ~Q(circuit=CLOSED)).values_list(
                "consumer", "paused", "circuit"
            )
        )
        yield self._paused(names, {consumer for consumer, paused, _circuit in controls if paused})
        yield self._circuit(names, {consumer: circuit for consumer, _paused, circuit in controls if circuit != CLOSED})
        yield self._slowed(names, counts)
        yield self._sweep()
        dead_letters = self._dead_letters()
        if dead_letters is not None:
            yield dead_letters
        consumed = self._consumed()
        if consumed is not None:
            yield consumed

    def _events(self, counts: dict[tallies.Series, float]) -> Metric:
        family = CounterMetricFamily("relay_events", "Domain events emitted (stored), by event name.", labels=["name"])
        seen = {name for metric, _consumer, name in counts if metric == tallies.EVENTS}
        # Every event this code can publish has its series from the start, at 0 until one is.
        for name in sorted(set(event_signals) | seen):
            family.add_metric([name], counts.get((tallies.EVENTS, "", name), 0))
        return family

    def _deliveries(self, names: list[str], counts: dict[tallies.Series, float], *, now: datetime) -> Iterator[Metric]:
        pending = Q(status=Delivery.Status.PENDING)
        running = pending & Q(lease_until__gt=now)
        due = pending & ~Q(lease_until__gt=now) & Q(due_at__lte=now)
        # Only the open rows (pending, failed): done ones, the millions, are counted in the tallies.
        rows = (
            Delivery.objects.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED])
            .order_by()
            .values("consumer")
            .annotate(
                failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
                due=Count("pk", filter=due),
                running=Count("pk", filter=running),
                waiting=Count("pk", filter=pending & ~Q(lease_until__gt=now) & ~Q(due_at__lte=now)),
                oldest_due=Min("due_at", filter=due),
            )
        )
        by_consumer = {row["consumer"]: row for row in rows}
        empty = {"failed": 0, "due": 0, "running": 0, "waiting": 0, "oldest_due": None}
        totals = CounterMetricFamily(
            "relay_deliveries",
            "Deliveries that ended done, failed (a dead letter) or expired (past its consumer's deadline, not run),"
            " by consumer; a replayed one counts again.",
            labels=["consumer", "status"],
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
        counted = {consumer for metric, consumer, _label in counts if metric == tallies.DELIVERIES}
        for consumer in _with_unknown(names, set(by_consumer) | counted):
            row = by_consumer.get(consumer, empty)
            for status in (Delivery.Status.DONE, Delivery.Status.FAILED, Delivery.Status.EXPIRED):
                totals.add_metric([consumer, status], counts.get((tallies.DELIVERIES, consumer, status), 0))
            pending_gauge.add_metric([consumer, "due"], row["due"])
            pending_gauge.add_metric([consumer, "running"], row["running"])
            pending_gauge.add_metric([consumer, "waiting"], row["waiting"])
            failed_gauge.add_metric([consumer], row["failed"])
            age = (now - row["oldest_due"]).total_seconds() if row["oldest_due"] is not None else 0.0
            oldest.add_metric([consumer], max(age, 0.0))
        yield from (totals, pending_gauge, failed_gauge, oldest)

    def _attempts(self, names: list[str], counts: dict[tallies.Series, float]) -> Metric:
        family = CounterMetricFamily(
            "relay_delivery_attempts",
            "Delivery attempts by consumer and outcome, once they have one (running ones are in"
            " relay_deliveries_pending).",
            labels=["consumer", "outcome"],
        )
        outcomes = [outcome for outcome in DeliveryAttempt.Outcome.values if outcome != DeliveryAttempt.Outcome.RUNNING]
        counted = {consumer for metric, consumer, _label in counts if metric == tallies.ATTEMPTS}
        for consumer in _with_unknown(names, counted):
            for outcome in outcomes:
                family.add_metric([consumer, outcome], counts.get((tallies.ATTEMPTS, consumer, outcome), 0))
        return family

    def _lag(self, names: list[str], counts: dict[tallies.Series, float]) -> Metric:
        family = HistogramMetricFamily(
            "relay_delivery_lag_seconds",
            "Seconds from a delivery's creation to its completion, every delivery done (cumulative).",
            labels=["consumer"],
        )
        counted = {consumer for metric, consumer, _label in counts if metric == tallies.LAG}
        for consumer in _with_unknown(names, counted):
            cumulative, buckets = 0.0, []
            for bound in (*map(repr, tallies.LAG_BUCKETS), tallies.INF):
                cumulative += counts.get((tallies.LAG, consumer, bound), 0)
                buckets.append((bound, cumulative))
            family.add_metric([consumer], buckets, counts.get((tallies.LAG_SUM, consumer, ""), 0.0))
        return family

    def _slowed(self, names: list[str], counts: dict[tallies.Series, float]) -> Metric:
        family = CounterMetricFamily(
            "relay_consumer_slowed_down",
            "Refusals for the provider's quota (HTTP 429, an SMTP too many) by consumer: each held its rate"
            " limit's bucket fleet-wide and cost the delivery no attempt.",
            labels=["consumer"],
        )
        counted = {consumer for metric, consumer, _label in counts if metric == tallies.SLOWED}
        for consumer in _with_unknown(names, counted):
            family.add_metric([consumer], counts.get((tallies.SLOWED, consumer, ""), 0))
        return family

    def _paused(self, names: list[str], paused: set[str]) -> Metric:
        family = GaugeMetricFamily(
            "relay_consumer_paused", "1 while an operator has paused the consumer, else 0.", labels=["consumer"]
        )
        for consumer in _with_unknown(names, paused):
            family.add_metric([consumer], 1 if consumer in paused else 0)
        return family

    def _circuit(self, names: list[str], states: dict[str, str]) -> Metric:
        family = GaugeMetricFamily(
            "relay_consumer_circuit",
            "1 for the state a consumer's circuit breaker is in (closed, open, probing), 0 for the others.",
            labels=["consumer", "state"],
        )
        for consumer in _with_unknown(names, states):
            current = states.get(consumer, CLOSED)
            for state in ConsumerControl.Circuit.values:
                family.add_metric([consumer, state], 1 if state == current else 0)
        return family

    def _sweep(self) -> Metric:
        family = GaugeMetricFamily(
            "relay_sweep_last_run_timestamp_seconds",
            "When the sweep last ran (Unix time; the seed time 2000-01-01 until it first runs).",
        )
        started_at = SweepRun.objects.filter(pk=1).values_list("started_at", flat=True).first()
        family.add_metric([], (started_at or NEVER).timestamp())
        return family

    def _consumed(self) -> Metric | None:
        queues = expected_queues()
        try:
            seen = consumed(queues)
        except (redis.RedisError, OSError):
            return None  # Redis does not answer: this scrape cannot tell.
        family = GaugeMetricFamily(
            "relay_queue_consumed",
            "1 while some worker's consumer says (its heartbeat, every 5 s) that it consumes the queue, else 0.",
            labels=["queue"],
        )
        for queue in queues:
            family.add_metric([queue], 1 if queue in seen else 0)
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
