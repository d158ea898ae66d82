"""Every change of a delivery's state: each conditional on its state and on who holds its lease."""

from __future__ import annotations

import os
import socket
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now
from django.utils import timezone

from events.models import Delivery, DeliveryAttempt

ERROR_KEPT = 4000


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A delivery leased to this worker, with its event's name and payload."""

    delivery_id: int
    event_id: UUID
    consumer: str
    event_name: str
    payload: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """An attempt this worker started: its row, its number and the schedule's count."""

    claim: Claim
    attempt_id: int
    number: int
    retries: int


class LeaseLost(Exception):
    """The delivery is no longer held by this worker: its outcome is not ours to record."""


def new_owner() -> str:
    """Return a lease owner unique to one drain: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _db_now() -> Now:
    # Leases and due times are read and written on the database's clock: workers on hosts whose
    # clocks differ by more than a lease would otherwise take over each other's live deliveries.
    return Now()


def lease_until() -> CombinedExpression:
    return _db_now() + timedelta(seconds=settings.EVENTS_LEASE)


def due(*, consumer: str, now: datetime | Now | None = None) -> QuerySet[Delivery]:
    """Return consumer's deliveries that may run now: pending, due, and held by nobody alive."""
    now = _db_now() if now is None else now
    return Delivery.objects.filter(consumer=consumer, status=Delivery.Status.PENDING, due_at__lte=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )


def claim(*, consumer: str, owner: str, limit: int) -> list[Claim]:
    """Lease up to limit due deliveries of consumer to owner, oldest due first."""
    now = timezone.now()
    with transaction.atomic():
        # SKIP LOCKED on PostgreSQL: two drains of one consumer take different rows without waiting.
        ids = list(
            due(consumer=consumer)
            .select_for_update(skip_locked=True)
            .order_by("due_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids).update(lease_owner=owner, lease_until=lease_until(), updated_at=now)
        rows = list(
            Delivery.objects.filter(id__in=ids)
            .order_by("due_at", "id")
            .values_list("id", "event_id", "event__name", "event__payload")
        )
        # An attempt still "running" belonged to a worker that died: its lease expired.
        DeliveryAttempt.objects.filter(delivery_id__in=ids, outcome=DeliveryAttempt.Outcome.RUNNING).update(
            outcome=DeliveryAttempt.Outcome.LOST, finished_at=now, error="its worker stopped before it finished"
        )
    return [
        Claim(delivery_id=pk, event_id=event_id, consumer=consumer, event_name=name, payload=payload)
        for pk, event_id, name, payload in rows
    ]


def attempt_start(*, claim: Claim, owner: str) -> Attempt:
    """Count and record an attempt before its effect starts; LeaseLost if owner no longer holds it."""
    now = timezone.now()
    with transaction.atomic():
        held = Delivery.objects.filter(pk=claim.delivery_id, lease_owner=owner, status=Delivery.Status.PENDING)
        if not held.update(attempts=F("attempts") + 1, retries=F("retries") + 1, updated_at=now):
            raise LeaseLost(claim.delivery_id)
        attempts, retries = Delivery.objects.values_list("attempts", "retries").get(pk=claim.delivery_id)
        attempt = DeliveryAttempt.objects.create(
            delivery_id=claim.delivery_id, number=attempts, worker=owner.rsplit(":", 1)[0], started_at=now
        )
    return Attempt(claim=claim, attempt_id=attempt.pk, number=attempts, retries=retries)


def _finish(attempt: Attempt, owner: str, *, outcome: DeliveryAttempt.Outcome, error: str, **change: Any) -> None:
    now = timezone.now()
    with transaction.atomic():
        held = Delivery.objects.filter(pk=attempt.claim.delivery_id, lease_owner=owner, status=Delivery.Status.PENDING)
        if not held.update(lease_owner="", lease_until=None, updated_at=now, **change):
            raise LeaseLost(attempt.claim.delivery_id)
        DeliveryAttempt.objects.filter(pk=attempt.attempt_id).update(outcome=outcome, finished_at=now, error=error)


def complete(*, attempt: Attempt, owner: str) -> None:
    """Mark a held delivery done (no error, no due time: the history keeps them)."""
    _finish(
        attempt,
        owner,
        outcome=DeliveryAttempt.Outcome.DONE,
        error="",
        status=Delivery.Status.DONE,
        completed_at=timezone.now(),
        due_at=None,
        last_error="",
    )


def retry_later(*, attempt: Attempt, owner: str, delay: float, error: BaseException | str) -> None:
    """Give a held delivery back, due again in delay seconds, before any doorbell for it is rung."""
    text = describe(error)
    _finish(
        attempt,
        owner,
        outcome=DeliveryAttempt.Outcome.RETRY,
        error=text,
        due_at=_db_now() + timedelta(seconds=delay),
        last_error=text,
    )


def fail(*, attempt: Attempt, owner: str, error: BaseException | str) -> None:
    """Make a held delivery a dead letter, with the error that ended it."""
    text = describe(error)
    _finish(
        attempt,
        owner,
        outcome=DeliveryAttempt.Outcome.FAILED,
        error=text,
        status=Delivery.Status.FAILED,
        due_at=None,
        last_error=text,
    )


def release(*, claims: list[Claim], owner: str) -> None:
    """Give back held deliveries that were not started (the drain ran out of time)."""
    Delivery.objects.filter(
        pk__in=[held.delivery_id for held in claims], lease_owner=owner, status=Delivery.Status.PENDING
    ).update(lease_owner="", lease_until=None, updated_at=timezone.now())


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
