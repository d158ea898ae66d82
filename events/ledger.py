"""Every change of a delivery's state: each conditional on its state and on who holds its lease."""

from __future__ import annotations

import logging
import os
import socket
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.utils import timezone

from events import deadlines, logcontext, tallies
from events.conf import events_settings
from events.models import ConsumerControl, Delivery, DeliveryAttempt

logger = logging.getLogger(__name__)

ERROR_KEPT = 4000


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A delivery leased to this drain: the event it carries and the row of the attempt it started."""

    delivery_id: int
    event_id: UUID
    consumer: str
    event_name: str
    payload: dict[str, Any]
    attempt_id: int
    number: int
    attempts_since_replay: int
    created_at: datetime
    trace_context: dict[str, str]
    #: Taken as the probe of an open circuit (events.circuit): it spends no attempt of the retry schedule.
    probe: bool = False
    #: Made due by a replay or a backfill: it yields to live work of its consumer, even mid-batch.
    backlog: bool = False


class Batch(list[Claim]):
    """A claim's deliveries, and how many of the due rows it took ended expired instead (a full batch rings again)."""

    def __init__(self, claims: Iterable[Claim] = (), *, expired: int = 0) -> None:
        super().__init__(claims)
        self.expired = expired


# The claim's order: live deliveries before those a replay or a backfill made due, then by due time.
LANE_ORDER = ("backlog", "due_at", "id")


class LeaseLost(Exception):
    """The delivery is no longer held by this worker: its outcome is not ours to record."""


def new_owner() -> str:
    """Return a lease owner unique to one drain: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class DatabaseNow(Now):
    """The database's clock; on SQLite to the end of its millisecond, as Django writes datetimes there.

    SQLite compares datetimes as text, and its clock has milliseconds ("…07.117") where Django
    writes microseconds ("…07.117000", "…07.117512"): a delivery made due now in the same
    millisecond, by the database or by Python, would not be due until the next one.
    """

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f999', 'NOW')", **extra_context
        )


def _db_now() -> Now:
    # Leases and due times are read and written on the database's clock: workers on hosts whose
    # clocks differ by more than a lease would otherwise take over each other's live deliveries.
    return DatabaseNow()


def lease_until() -> CombinedExpression:
    return _db_now() + timedelta(seconds=events_settings().lease)


def due(*, consumer: str, now: datetime | Now | None = None) -> QuerySet[Delivery]:
    """Return consumer's deliveries that may run now: pending, due, and held by nobody alive."""
    now = _db_now() if now is None else now
    return Delivery.objects.filter(consumer=consumer, status=Delivery.Status.PENDING, due_at__lte=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )


def live_waiting(*, consumer: str) -> bool:
    """Return whether a live delivery of consumer (not a replay's or a backfill's) is due and unheld."""
    return due(consumer=consumer).filter(backlog=False).exists()


def claim(*, consumer: str, owner: str, limit: int, breaker: bool = False) -> Batch:
    """Lease up to limit due deliveries of consumer to owner, live ones first, and record an attempt at each.

    One transaction for the batch: the attempts are counted and their rows written before any
    effect starts, so a worker that dies mid-effect leaves its attempt behind (marked lost later).
    Live deliveries come before the backlog a replay made (LANE_ORDER), then the oldest due. Of
    the rows taken, those past their deadline end expired instead (counted in the Batch).
    """
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED on PostgreSQL: two drains of one consumer take different rows without waiting.
        # A paused consumer's rows wait, due: a pause committed before this statement is honoured,
        # and resuming rings the consumer again.
        paused = ConsumerControl.objects.filter(consumer=OuterRef("consumer"), paused=True)
        # The breaker: while the consumer's circuit is open, only its probe runs (events.circuit.take_probe).
        # A consumer that no longer declares one is never held back by a circuit left open.
        tripped = ConsumerControl.objects.filter(consumer=OuterRef("consumer")).exclude(
            circuit=ConsumerControl.Circuit.CLOSED
        )
        rows = due(consumer=consumer).exclude(Exists(paused))
        if breaker:
            rows = rows.exclude(Exists(tripped))
        candidates = list(
            rows.select_for_update(skip_locked=True)
            .order_by(*LANE_ORDER)
            .values_list("id", "event_id", "expires_at")[:limit]
        )
        if not candidates:
            return Batch()
        expired = _expire(consumer=consumer, candidates=candidates, now=now)
        ids = [pk for pk, _event, _expires in candidates if pk not in expired]
        claims = lease(consumer=consumer, ids=ids, owner=owner)
    return Batch(claims, expired=len(expired))


def lease(*, consumer: str, ids: list[int], owner: str, probe: bool = False) -> list[Claim]:
    """Lease the locked rows ids to owner and record an attempt at each (inside the caller's transaction).

    A probe (events.circuit) counts its attempt in the history but not toward the retry schedule
    (attempts_since_replay): an outage of any length makes no dead letter.
    """
    if not ids:
        return []
    now = timezone.now()
    # An attempt still "running" belonged to a worker that died: its lease expired.
    lost = DeliveryAttempt.objects.filter(delivery_id__in=ids, outcome=DeliveryAttempt.Outcome.RUNNING).update(
        outcome=DeliveryAttempt.Outcome.LOST, finished_at=now, error="its worker stopped before it finished"
    )
    tallies.add({(tallies.ATTEMPTS, consumer, DeliveryAttempt.Outcome.LOST): lost})
    Delivery.objects.filter(id__in=ids).update(
        lease_owner=owner,
        lease_until=lease_until(),
        attempts=F("attempts") + 1,
        attempts_since_replay=F("attempts_since_replay") + (0 if probe else 1),
        updated_at=now,
    )
    rows = list(
        Delivery.objects.filter(id__in=ids)
        .order_by(*LANE_ORDER)
        .values_list(
            "id",
            "event_id",
            "event__name",
            "event__payload",
            "attempts",
            "attempts_since_replay",
            "created_at",
            "event__trace_context",
            "backlog",
        )
    )
    worker = owner.rsplit(":", 1)[0]
    started = DeliveryAttempt.objects.bulk_create(
        [
            DeliveryAttempt(delivery_id=pk, number=attempts, worker=worker, started_at=now)
            for pk, _event, _name, _payload, attempts, _since_replay, _created, _trace, _backlog in rows
        ]
    )
    return [
        Claim(
            delivery_id=pk,
            event_id=event_id,
            consumer=consumer,
            event_name=name,
            payload=payload,
            attempt_id=row.pk,
            number=attempts,
            attempts_since_replay=since_replay,
            created_at=created_at,
            trace_context=trace_context or {},
            probe=probe,
            backlog=backlog,
        )
        for (pk, event_id, name, payload, attempts, since_replay, created_at, trace_context, backlog), row in zip(
            rows, started, strict=True
        )
    ]


def _expire(*, consumer: str, candidates: list[tuple[int, UUID, datetime | None]], now: datetime) -> set[int]:
    """End expired those of a claim's locked rows past their deadline: no attempt spent, no effect, tallied.

    Not a failure (no dead letter, no failed count): its effect is no longer worth doing. It stays
    visible, and a replay runs it (with a deadline counted from the replay).
    """
    late = [(pk, event_id) for pk, event_id, expires in candidates if expires is not None and expires <= now]
    if not late:
        return set()
    reason = deadlines.expired_reason(consumer)
    Delivery.objects.filter(pk__in=[pk for pk, _event in late]).update(
        status=Delivery.Status.EXPIRED, due_at=None, last_error=reason, updated_at=now
    )
    tallies.add({(tallies.DELIVERIES, consumer, Delivery.Status.EXPIRED): len(late)})
    for pk, event_id in late:
        with logcontext.event_scope(event_id):
            logger.info("Delivery %s of %s (event %s) %s", pk, consumer, event_id, reason)
    return {pk for pk, _event in late}


def expire_overdue(*, consumer: str, chunk: int = 500) -> int:
    """End expired consumer's unheld pending deliveries past their deadline (while no claim runs, an open circuit)."""
    now = timezone.now()
    with transaction.atomic():
        late = list(
            Delivery.objects.filter(consumer=consumer, status=Delivery.Status.PENDING, expires_at__lte=_db_now())
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=_db_now()))
            .select_for_update(skip_locked=True)
            .values_list("id", "event_id", "expires_at")[:chunk]
        )
        return len(_expire(consumer=consumer, candidates=late, now=now))


def _finish(claims: list[Claim], owner: str, *, outcome: str, error: str, ended: str = "", **change: Any) -> None:
    """Record outcome for held claims (and, when ended, how their deliveries ended) with their tallies."""
    now = timezone.now()
    with transaction.atomic():
        held = Delivery.objects.filter(
            pk__in=[claim.delivery_id for claim in claims], lease_owner=owner, status=Delivery.Status.PENDING
        )
        if held.update(lease_owner="", lease_until=None, updated_at=now, **change) != len(claims):
            # Rolls back the whole block: nothing is recorded for a delivery this drain no longer holds.
            raise LeaseLost([claim.delivery_id for claim in claims])
        DeliveryAttempt.objects.filter(pk__in=[claim.attempt_id for claim in claims]).update(
            outcome=outcome, finished_at=now, error=error
        )
        counts: Counter[tallies.Series] = Counter()
        for claim in claims:
            counts[(tallies.ATTEMPTS, claim.consumer, outcome)] += 1
            if ended:
                counts[(tallies.DELIVERIES, claim.consumer, ended)] += 1
            if ended == Delivery.Status.DONE:
                counts.update(tallies.lags(claim.consumer, [(now - claim.created_at).total_seconds()]))
        tallies.add(counts)


def complete(*, claims: list[Claim], owner: str) -> None:
    """Mark held deliveries done (no error, no due time: the history keeps them); LeaseLost if any is not held."""
    if not claims:
        return
    _finish(
        claims,
        owner,
        outcome=DeliveryAttempt.Outcome.DONE,
        error="",
        ended=Delivery.Status.DONE,
        status=Delivery.Status.DONE,
        completed_at=timezone.now(),
        due_at=None,
        last_error="",
    )


def still_held(*, claims: list[Claim], owner: str) -> list[Claim]:
    """Return those of claims whose delivery owner still holds."""
    held = set(
        Delivery.objects.filter(
            pk__in=[claim.delivery_id for claim in claims], lease_owner=owner, status=Delivery.Status.PENDING
        ).values_list("pk", flat=True)
    )
    return [claim for claim in claims if claim.delivery_id in held]


def retry_later(*, claim: Claim, owner: str, delay: float, error: BaseException | str, spent: bool = True) -> None:
    """Give a held delivery back, due again in delay seconds, before any doorbell for it is rung.

    spent=False: its attempt stays in the history but does not count toward its retry schedule.
    """
    text = describe(error)
    # A probe's claim never counted toward the schedule: nothing to give back.
    unspent = {} if spent or claim.probe else {"attempts_since_replay": F("attempts_since_replay") - 1}
    _finish(
        [claim],
        owner,
        outcome=DeliveryAttempt.Outcome.RETRY,
        error=text,
        due_at=_db_now() + timedelta(seconds=delay),
        last_error=text,
        **unspent,
    )


def defer(*, claim: Claim, owner: str, delay: float, error: BaseException | str) -> None:
    """Give a held delivery back due in delay seconds without spending an attempt (the provider said slow down)."""
    with transaction.atomic():
        retry_later(claim=claim, owner=owner, delay=delay, error=error, spent=False)
        tallies.add({(tallies.SLOWED, claim.consumer, ""): 1})


def fail(*, claim: Claim, owner: str, error: BaseException | str) -> None:
    """Make a held delivery a dead letter, with the error that ended it."""
    text = describe(error)
    _finish(
        [claim],
        owner,
        outcome=DeliveryAttempt.Outcome.FAILED,
        error=text,
        ended=Delivery.Status.FAILED,
        status=Delivery.Status.FAILED,
        due_at=None,
        last_error=text,
    )


def release(*, claims: list[Claim], owner: str) -> None:
    """Give back those of claims still held whose attempt never started (the drain stopped early): as if never claimed.

    A delivery another drain holds now is left alone, its attempt rows included: they are that
    drain's history (it marked this one's attempt lost when it took the lease).
    """
    if not claims:
        return
    with transaction.atomic():
        # Locked (IMMEDIATE on SQLite): no drain takes one of these between the check and the writes.
        held = set(
            Delivery.objects.select_for_update()
            .filter(pk__in=[claim.delivery_id for claim in claims], lease_owner=owner, status=Delivery.Status.PENDING)
            .values_list("pk", flat=True)
        )
        if not held:
            return
        # A probe's claim never counted toward the schedule (attempts_since_replay): only its attempt is given back.
        probes = {claim.delivery_id for claim in claims if claim.probe}
        for pks, since_replay in ((held - probes, 1), (held & probes, 0)):
            if pks:
                Delivery.objects.filter(pk__in=pks).update(
                    lease_owner="",
                    lease_until=None,
                    attempts=F("attempts") - 1,
                    attempts_since_replay=F("attempts_since_replay") - since_replay,
                    updated_at=timezone.now(),
                )
        DeliveryAttempt.objects.filter(
            pk__in=[claim.attempt_id for claim in claims if claim.delivery_id in held]
        ).delete()


def hold(*, claim: Claim, owner: str) -> bool:
    """Extend owner's lease on claim's delivery if it still holds it on the database's clock; return whether it does.

    The fence before an effect: a drain whose lease lapsed (a frozen process, renewals that
    failed) learns it here, before it starts an effect that is no longer its to do.
    """
    now = _db_now()
    return (
        Delivery.objects.filter(
            pk=claim.delivery_id, lease_owner=owner, status=Delivery.Status.PENDING, lease_until__gt=now
        ).update(lease_until=lease_until())
        == 1
    )


def renew(*, owners: list[str]) -> int:
    """Extend the leases owners hold; return how many were extended."""
    return Delivery.objects.filter(lease_owner__in=owners, status=Delivery.Status.PENDING).update(
        lease_until=lease_until()
    )


def describe(error: BaseException | str | None) -> str:
    """Return error as stored text: the traceback's last lines, which say the most."""
    if error is None:
        return ""
    if isinstance(error, str):
        return error[-ERROR_KEPT:]
    return "".join(traceback.format_exception(error))[-ERROR_KEPT:]


def prune(*, chunk: int = 5000) -> int:
    """Delete done deliveries completed over EVENTS_RETENTION_DAYS ago, with their attempts; return how many.

    In chunks, so no statement holds its locks for long. Pending and failed deliveries are never
    pruned: they are owed, or waiting for an operator. Events stay: they are the log of facts.
    """
    cutoff = timezone.now() - timedelta(days=events_settings().retention_days)
    old = Delivery.objects.filter(status=Delivery.Status.DONE, completed_at__lt=cutoff)
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:chunk]):
        DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
        deleted += Delivery.objects.filter(pk__in=ids).delete()[1].get(Delivery._meta.label, 0)
    return deleted


def paused_consumers() -> set[str]:
    """Return the names of the consumers an operator has paused."""
    return set(ConsumerControl.objects.filter(paused=True).values_list("consumer", flat=True))
