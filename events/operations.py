"""What operators do to the delivery core (pause, resume, replay), each published as a fact for the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from django.db import transaction

from events.models import ConsumerControl, Delivery, Event
from events.publishing import publish
from events.registry import Consumer
from events.replay import Replayed, deliveries_make_due
from events.signals import EventSignal


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorActed:
    """An operator paused or resumed a consumer, or replayed deliveries."""

    name: ClassVar[str] = "events.operator_acted"

    PAUSED: ClassVar[str] = "consumer.paused"
    RESUMED: ClassVar[str] = "consumer.resumed"
    REPLAYED: ClassVar[str] = "deliveries.replayed"

    action: str
    actor_id: int | None
    source: str
    consumers: tuple[str, ...]
    count: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "action": self.action,
            "actor_id": self.actor_id,
            "source": self.source,
            "consumers": list(self.consumers),
            "count": self.count,
            "details": self.details,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperatorActed:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            action=data["action"],
            actor_id=data["actor_id"],
            source=data["source"],
            consumers=tuple(data["consumers"]),
            count=int(data["count"]),
            details=dict(data["details"]),
            version=int(data["version"]),
        )


operator_acted = EventSignal(event_class=OperatorActed)


@transaction.atomic
def consumer_pause(*, consumer: Consumer, actor_id: int | None, source: str = "admin") -> bool:
    """Pause consumer: its deliveries wait, due, until it is resumed. Return False if it already was."""
    return _switch(consumer=consumer, paused=True, actor_id=actor_id, source=source)


@transaction.atomic
def consumer_resume(*, consumer: Consumer, actor_id: int | None, source: str = "admin") -> bool:
    """Resume consumer and ring it: its backlog drains. Return False if it was not paused."""
    resumed = _switch(consumer=consumer, paused=False, actor_id=actor_id, source=source)
    if resumed:
        transaction.on_commit(lambda: consumer.ring(force=True))
    return resumed


def _switch(*, consumer: Consumer, paused: bool, actor_id: int | None, source: str) -> bool:
    control, _created = ConsumerControl.objects.select_for_update().get_or_create(consumer=consumer.name)
    if control.paused == paused:
        return False
    control.paused = paused
    control.changed_by_id = actor_id
    control.save()
    backlog = Delivery.objects.filter(consumer=consumer.name, status=Delivery.Status.PENDING).count()
    publish(
        signal=operator_acted,
        event=OperatorActed(
            action=OperatorActed.PAUSED if paused else OperatorActed.RESUMED,
            actor_id=actor_id,
            source=source,
            consumers=(consumer.name,),
            details={"pending": backlog},
        ),
    )
    return True


@transaction.atomic
def deliveries_replay(
    *,
    deliveries: Iterable[Delivery],
    missing: Iterable[tuple[Event, Consumer]] = (),
    actor_id: int | None,
    source: str,
    scope: dict[str, Any],
) -> Replayed:
    """Replay deliveries (see events.replay.deliveries_make_due) and record who did it, on what."""
    deliveries = list(deliveries)
    missing = list(missing)
    replayed = deliveries_make_due(deliveries=deliveries, missing=missing)
    if replayed.count:
        names = {delivery.consumer for delivery in deliveries} | {declared.name for _event, declared in missing}
        publish(
            signal=operator_acted,
            event=OperatorActed(
                action=OperatorActed.REPLAYED,
                actor_id=actor_id,
                source=source,
                consumers=tuple(sorted(names)),
                count=replayed.count,
                details=scope,
            ),
        )
    return replayed
