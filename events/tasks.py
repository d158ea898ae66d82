"""Tasks of the events app: the periodic sweep that re-enqueues what is owed."""

from __future__ import annotations

from celery import shared_task

from events.services import delivery_sweep


@shared_task
def sweep_deliveries() -> int:
    """Enqueue again every delivery still pending past its due time (run by Celery beat)."""
    return delivery_sweep()
