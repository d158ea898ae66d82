"""Publishing: an event stored with a delivery per subscribed consumer, and signalled once it commits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from events import deadlines, logcontext, tallies, tracing
from events.doorbells import doorbells
from events.models import Delivery, Event
from events.registry import consumers_of
from events.signals import EventSignal

logger = logging.getLogger(__name__)


class DomainEvent(Protocol):
    """What every domain event offers: an id, a time, a name, a version and a JSON form.

    An event about a user also has `user_id`: the ledger stores it so a user's side effects are found by it.
    """

    name: ClassVar[str]
    event_id: UUID
    occurred_at: datetime
    version: int

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


# Test helpers (events.testing) listen here: every event published, before its transaction ends.
publish_listeners: list[Callable[[DomainEvent], None]] = []


def publish(*, signal: EventSignal, event: DomainEvent) -> None:
    """Store event and a delivery per consumer subscribed to signal, in the current transaction; send signal on commit.

    The consumers subscribed now (their receivers connected) are owed the event: one list, as
    Spring Modulith stores one publication per listener. Nothing is sent when the transaction
    rolls back. The deliveries are the truth: the receivers only ring doorbells, and whatever they
    fail to ring the sweep rings later.
    """
    with tracing.publishing(name=event.name, event_id=event.event_id) as trace_context:
        stored = Event.objects.create(
            id=event.event_id,
            name=event.name,
            version=event.version,
            payload=event.to_dict(),
            occurred_at=event.occurred_at,
            # An event about a user says which (`user_id`): the ledger indexes it for operators.
            user_id=getattr(event, "user_id", None),
            # Its attempts, later and elsewhere, link their spans to this publish (empty when not tracing).
            trace_context=trace_context,
        )
        now = timezone.now()
        # A deadline counts from the event: an effect owed since an outage is as stale as its event.
        Delivery.objects.bulk_create(
            [
                Delivery(
                    event=stored,
                    consumer=declared.name,
                    due_at=now,
                    expires_at=deadlines.expires_at(declared, start=event.occurred_at),
                )
                for declared in consumers_of(signal)
            ]
        )
        tallies.add({(tallies.EVENTS, "", event.name): 1})
    # The rest of the request's lines (the doorbells rung on commit, the response) carry the event id.
    logcontext.event_published(event.event_id)
    for listener in publish_listeners:
        listener(event)
    transaction.on_commit(partial(_dispatch, signal, event))


def _dispatch(signal: EventSignal, event: DomainEvent) -> None:
    """Send signal to every receiver; the doorbells they ring share one round trip to the broker."""
    with logcontext.event_scope(event.event_id):
        # Logged on commit, not at publish: a rolled-back event was never published. This line ties
        # the event id to the request id, so a grep for either finds the other.
        logger.info("Published %s %s", event.name, event.event_id)
        _ring_receivers(signal, event)


def _ring_receivers(signal: EventSignal, event: DomainEvent) -> None:
    with doorbells() as batch:
        results = signal.send_robust(sender=type(event), event=event)
    if batch.failed is not None:
        logger.warning(
            "Broker unavailable while dispatching %s event %s (%s): the sweep will ring its consumers",
            event.name,
            event.event_id,
            type(batch.failed).__name__,
        )
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error(
                "Receiver %s failed for %s event %s: the sweep will ring its consumer",
                f"{receiver.__module__}.{getattr(receiver, '__qualname__', repr(receiver))}",
                event.name,
                event.event_id,
                exc_info=result,
            )
