"""Replay: make deliveries due again (never taking a lease from its holder), and backfill new consumers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from events import deadlines
from events.doorbells import doorbells
from events.models import Delivery, Event
from events.registry import Consumer, get_consumer


@dataclass
class Replayed:
    """What a replay made due, and whether its consumers' doorbells reached the broker."""

    count: int
    consumers: tuple[str, ...] = ()
    # None until the rings are tried, once the replay commits; False: the broker failed them
    # (`failed` says how) and the sweep rings the consumers instead.
    rung: bool | None = None
    failed: BaseException | None = field(default=None, repr=False)


def deliveries_for_replay(
    *,
    consumers: list[Consumer],
    event_id: UUID | str | None = None,
    failed: bool = False,
    expired: bool = False,
    since: datetime | None = None,
) -> QuerySet[Delivery]:
    """Select the deliveries a replay would run (failed and expired: either); --since leaves done ones alone."""
    deliveries = Delivery.objects.filter(consumer__in=[c.name for c in consumers]).select_related("event")
    if event_id is not None:
        deliveries = deliveries.filter(event_id=event_id)
    chosen = {Delivery.Status.FAILED: failed, Delivery.Status.EXPIRED: expired}
    ended = [status for status, wanted in chosen.items() if wanted]
    if ended:
        deliveries = deliveries.filter(status__in=ended)
    if since is not None:
        deliveries = deliveries.filter(event__occurred_at__gte=since).exclude(status=Delivery.Status.DONE)
    return deliveries.order_by("event__occurred_at", "consumer")


def events_missing_deliveries(
    *, consumers: list[Consumer], event_id: UUID | str | None = None, since: datetime | None = None
) -> list[tuple[Event, Consumer]]:
    """Return (event, consumer) pairs owed a delivery with no row yet (a consumer added later)."""
    events = Event.objects.all()
    if event_id is not None:
        events = events.filter(pk=event_id)
    elif since is not None:
        events = events.filter(occurred_at__gte=since)
    else:
        return []
    missing: list[tuple[Event, Consumer]] = []
    for declared in consumers:
        candidates = events.filter(name=declared.signal.event_class.name).exclude(deliveries__consumer=declared.name)
        missing.extend((event, declared) for event in candidates.order_by("occurred_at"))
    return missing


def deliveries_make_due(*, deliveries: Iterable[Delivery], missing: Iterable[tuple[Event, Consumer]] = ()) -> Replayed:
    """Make deliveries due now with a fresh retry count, create the missing ones, ring their consumers.

    They go in the backlog lane: a consumer's live deliveries (of events published from now on)
    are claimed before them, so a backfill of a year never holds up a new signup's effects. Their
    deadline, if their consumer has one, counts from now: an operator who replays wants it done.
    A delivery being run keeps its lease: its holder finishes and records the outcome, and the
    replay adds no second run. Attempts are never reset: the history keeps every one.
    Return how many deliveries were made due, of which consumers; once the replay commits, it
    also says whether their doorbells were sent.
    """
    now = timezone.now()
    missing = list(missing)
    pks = [delivery.pk for delivery in deliveries]
    with transaction.atomic():
        Delivery.objects.bulk_create(
            [
                Delivery(
                    event=event,
                    consumer=declared.name,
                    due_at=now,
                    backlog=True,
                    expires_at=deadlines.expires_at(declared, start=now),
                )
                for event, declared in missing
            ],
            ignore_conflicts=True,
        )
        replayed = Delivery.objects.filter(pk__in=pks)
        replayed.update(
            status=Delivery.Status.PENDING,
            attempts_since_replay=0,
            due_at=now,
            completed_at=None,
            updated_at=now,
            backlog=True,
            expires_at=None,
        )
        # One statement per consumer with a deadline (a handful), not one per delivery.
        for name in set(replayed.values_list("consumer", flat=True).distinct()):
            declared = _declared(name)
            if declared is not None and declared.deadline is not None:
                replayed.filter(consumer=name).update(expires_at=deadlines.expires_at(declared, start=now))
    names = set(Delivery.objects.filter(pk__in=pks).values_list("consumer", flat=True).distinct())
    names |= {declared.name for _event, declared in missing}
    replayed = Replayed(count=len(pks) + len(missing), consumers=tuple(sorted(names)))
    transaction.on_commit(lambda: _ring(replayed))
    return replayed


def _declared(name: str) -> Consumer | None:
    try:
        return get_consumer(name)
    except KeyError:
        return None  # No longer declared: replayed all the same, with no deadline.


def _ring(replayed: Replayed) -> None:
    with doorbells() as batch:
        for name in replayed.consumers:
            try:
                get_consumer(name).ring()
            except KeyError:
                continue  # No longer declared: its deliveries stay pending and visible.
    # Inside an enclosing block, the rings leave with it: not known yet.
    replayed.rung = True if batch.sent else (False if batch.failed is not None else None)
    replayed.failed = batch.failed
