"""Publishing events, and ringing consumers' doorbells: one round trip for every ring of a dispatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

import redis
from celery import Task, current_app
from django.db import transaction
from django.utils import timezone
from kombu import Producer
from kombu.exceptions import BatchPublishError, OperationalError

from events.models import Delivery, Event
from events.registry import consumers_of
from events.signals import EventSignal

logger = logging.getLogger(__name__)

# What a down, frozen or restarting Redis raises at publish time.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    BatchPublishError,
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class DomainEvent(Protocol):
    """What every domain event offers: an id, a time, a name, a version and a JSON form."""

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
    """Store event and a delivery per consumer in the current transaction; send signal once it commits.

    Nothing is sent when the transaction rolls back. The deliveries are the truth: the signal's
    receivers only ring doorbells, and whatever they fail to ring the sweep rings later.
    """
    now = timezone.now()
    Event.objects.store_with_deliveries(
        event_row={
            "id": event.event_id,
            "name": event.name,
            "version": event.version,
            "payload": event.to_dict(),
            "occurred_at": event.occurred_at,
        },
        delivery_rows=[
            {
                "event_id": event.event_id,
                "consumer": declared.name,
                "status": Delivery.Status.PENDING,
                "attempts": 0,
                "retries": 0,
                "due_at": now,
                "lease_owner": "",
                "lease_until": None,
                "last_error": "",
                "created_at": now,
                "updated_at": now,
                "completed_at": None,
            }
            for declared in consumers_of(signal)
        ],
    )
    for listener in publish_listeners:
        listener(event)
    transaction.on_commit(partial(_dispatch, signal, event))


def _dispatch(signal: EventSignal, event: DomainEvent) -> None:
    """Send signal to every receiver; the doorbells they ring share one round trip to the broker."""
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


@dataclass
class Doorbells:
    """The producer a block's rings share, and whether the broker failed them."""

    producer: Producer | None = None
    failed: BaseException | None = None


_current: ContextVar[Doorbells | None] = ContextVar("events_doorbells", default=None)


@contextmanager
def doorbells() -> Iterator[Doorbells]:
    """Send every ring inside the block in one pipelined round trip (kombu's Producer.batch), on exit.

    A broker error never escapes: it is recorded (`failed`), and after a first failure the
    remaining rings are skipped instead of each waiting for the broker's timeout.
    """
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    batch = Doorbells()
    token = _current.set(batch)
    try:
        with ExitStack() as stack:
            try:
                batch.producer = stack.enter_context(current_app.producer_or_acquire())
                stack.enter_context(batch.producer.batch())
            except BROKER_ERRORS as error:
                batch.failed = error
            yield batch
    except BROKER_ERRORS as error:
        # Raised by the flush on leaving producer.batch(): nothing of the batch is known to be sent.
        batch.failed = batch.failed or error
    finally:
        _current.reset(token)


def ring(task: Task, *, countdown: float | None = None) -> None:
    """Enqueue task (a consumer's drain) with no arguments; a broker error is logged, never raised."""
    batch = _current.get()
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    if batch is not None:
        if batch.failed is not None:
            return
        if batch.producer is not None:
            options["producer"] = batch.producer
    try:
        task.apply_async(**options)
    except BROKER_ERRORS as error:
        if batch is not None:
            batch.failed = error
            return
        logger.warning("Broker unavailable (%s): %s waits for the sweep", type(error).__name__, task.name)
