"""Tasks of the events app: the periodic sweep."""

from __future__ import annotations

import logging

from celery import shared_task

from events.ledger import prune
from events.retry import DATABASE_ERRORS, database_unavailable_raised
from events.sweep import sweep

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def sweep_deliveries() -> int:
    """Ring every consumer with due deliveries (run by Celery beat); return how many were rung."""
    try:
        with database_unavailable_raised():
            return len(sweep())
    except DATABASE_ERRORS as error:
        # The next pass, an interval away, is the retry.
        logger.warning("Sweep: database unavailable (%s); next pass tries again", type(error).__name__)
        return 0


@shared_task(ignore_result=True)
def prune_deliveries() -> int:
    """Delete done deliveries (and their attempts) older than EVENTS_RETENTION_DAYS (run daily by Celery beat)."""
    return prune()
