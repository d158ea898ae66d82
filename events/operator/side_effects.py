"""A user's side effects: every delivery of the events about the user, with its state and history."""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils import timezone

from events.circuit import circuits
from events.ledger import paused_consumers
from events.models import ConsumerControl, Delivery, DeliveryAttempt
from events.operator.measures import format_moment, format_seconds, lag_seconds


def user_side_effects(*, user_id: int) -> list[Delivery]:
    """Return every delivery of the events about user_id, newest event first, with their attempt history.

    Each carries what the page shows: `state` (running, pending, done, failed, expired, paused, circuit-open), `note`
    (what a pending one waits for), `lag`, `error_line`;
    each attempt its `started` time.
    """
    now = timezone.now()
    paused = paused_consumers()
    tripped = circuits()
    deliveries = list(
        Delivery.objects.filter(event__user_id=user_id)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_history", queryset=DeliveryAttempt.objects.order_by("number")))
        .order_by("-event__occurred_at", "consumer")
    )
    for delivery in deliveries:
        state = delivery.status
        if state == Delivery.Status.PENDING:
            if delivery.lease_until is not None and delivery.lease_until > now:
                state = "running"
            elif delivery.consumer in paused:
                state = "paused"
            elif delivery.consumer in tripped:
                state = "circuit-open"
        delivery.state = state  # type: ignore[attr-defined]
        delivery.note = _circuit_note(tripped[delivery.consumer]) if state == "circuit-open" else ""  # type: ignore[attr-defined]
        delivery.lag = format_seconds(lag_seconds(delivery))  # type: ignore[attr-defined]
        lines = [line for line in delivery.last_error.strip().splitlines() if line.strip()]
        # A done delivery shows no stale error; its attempt history keeps every one.
        error = lines[-1][:300] if lines and state != Delivery.Status.DONE else ""
        delivery.error_line = error  # type: ignore[attr-defined]
        for attempt in delivery.attempt_history.all():
            # The row shows the event's date: an attempt on that day needs only its time.
            attempt.started = format_moment(attempt.started_at, day_of=delivery.event.occurred_at)  # type: ignore[attr-defined]
    return deliveries


def _circuit_note(control: ConsumerControl) -> str:
    """Say what a delivery of a consumer whose circuit is open waits for."""
    probe = f"; next probe at {format_moment(control.probe_at)}" if control.probe_at else ""
    return f"waits for its consumer's open circuit (its endpoint kept failing){probe}"
