"""Publishing and loading domain events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

from django.db import transaction
from django.dispatch import Signal

from events.models import Event

logger = logging.getLogger(__name__)


class DomainEvent(Protocol):
    """What every domain event offers: an id, a time, a name, a version and a JSON form."""

    name: ClassVar[str]
    event_id: UUID
    occurred_at: datetime
    version: int

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


def event_publish(*, signal: Signal, event: DomainEvent) -> None:
    """Store event in the current transaction and send signal with it once that commits.

    Nothing is sent when the transaction rolls back. Receivers run through send_robust:
    one failing receiver neither stops the others nor reaches the caller.
    """
    Event.objects.create(
        id=event.event_id,
        name=event.name,
        version=event.version,
        payload=event.to_dict(),
        occurred_at=event.occurred_at,
    )
    transaction.on_commit(partial(_send, signal, event))


def _send(signal: Signal, event: DomainEvent) -> None:
    for receiver, result in signal.send_robust(sender=type(event), event=event):
        if isinstance(result, Exception):
            logger.error(
                "Receiver %s failed for %s event %s",
                _receiver_name(receiver),
                event.name,
                event.event_id,
                exc_info=result,
            )


def _receiver_name(receiver: Callable[..., Any]) -> str:
    return f"{receiver.__module__}.{getattr(receiver, '__qualname__', repr(receiver))}"


def event_load[E: DomainEvent](*, event_id: UUID | str, event_class: type[E]) -> E:
    """Load a stored event as an instance of event_class."""
    stored = Event.objects.get(pk=event_id, name=event_class.name)
    return event_class.from_dict(stored.payload)
