"""Tasks of the events app: the periodic sweep."""

from __future__ import annotations

from celery import shared_task

from events.ledger import prune
from events.sweep import sweep


@shared_task(ignore_result=True)
def sweep_deliveries() -> int:
    """Ring every consumer with due deliveries (run by Celery beat); return how many were rung."""
    return len(sweep())


@shared_task(ignore_result=True)
def prune_deliveries() -> int:
    """Delete done deliveries (and their attempts) older than EVENTS_RETENTION_DAYS (run daily by Celery beat)."""
    return prune()
