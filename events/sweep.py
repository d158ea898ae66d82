"""The sweep: ring the doorbell of every consumer with due work, once a pass."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db.models.functions import Now
from django.utils import timezone

from events import circuit, ledger
from events.conf import events_settings
from events.doorbells import doorbells
from events.models import SweepRun
from events.registry import consumers

logger = logging.getLogger(__name__)


def sweep() -> list[str]:
    """Ring each consumer with due deliveries once; return their names (none if a sweep just ran).

    A backlog of any size costs one doorbell per consumer per pass: each drain that fills its
    batch rings the next. Two schedulers may run: only one sweep per half interval goes ahead.
    """
    if not _take_turn():
        return []
    paused = ledger.paused_consumers()
    # An open circuit whose probe is due: its deliveries may all be backed off, none due.
    probes = circuit.probes_due()
    owed = [
        declared
        for declared in consumers()
        if declared.name not in paused and (declared.name in probes or ledger.due(consumer=declared.name).exists())
    ]
    with doorbells() as batch:
        for declared in owed:
            declared.ring(force=True)
    if batch.failed is not None:
        logger.warning("Sweep: broker unavailable (%s); next pass tries again", type(batch.failed).__name__)
        return []
    if owed:
        logger.info("Sweep rang %s", ", ".join(declared.name for declared in owed))
    return [declared.name for declared in owed]


def _take_turn() -> bool:
    """Record this sweep unless another started within half an interval (a second scheduler).

    On the database's clock, like the leases: schedulers on two hosts agree on it.
    """
    recent = Now() - timedelta(seconds=events_settings().sweep_interval / 2)
    if SweepRun.objects.filter(pk=1, started_at__lt=recent).update(started_at=Now()):
        return True
    _row, created = SweepRun.objects.get_or_create(pk=1, defaults={"started_at": timezone.now()})
    return created


# The migration seeds the row with this time, so the first sweep's conditional update finds a row.
NEVER = datetime(2000, 1, 1, tzinfo=UTC)


def last_sweep() -> datetime | None:
    """Return when the sweep last ran, None if it never has."""
    started_at = SweepRun.objects.filter(pk=1).values_list("started_at", flat=True).first()
    return None if started_at is None or started_at <= NEVER else started_at
