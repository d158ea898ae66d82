"""The Celery task base class of every consumer: one effect per (event, consumer), whatever the deliveries."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery.contrib.django.task import DjangoTask
from celery.exceptions import Retry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from events import services
from events.publishing import BROKER_ERRORS, current_batch

logger = logging.getLogger(__name__)


class ConsumerTask(DjangoTask):
    """Runs a consumer for one event at most once at a time, and records the outcome.

    Each run first claims the (event, consumer) delivery with a lease: a delivery already done
    or dead-lettered is skipped (a redelivered or duplicated message does nothing), one leased by
    a live worker is left to it. A retry releases the lease; success marks it done; any other
    error, or more attempts than EVENTS_MAX_ATTEMPTS, makes it a dead letter.
    """

    abstract = True
    #: The dispatch_uid of the receiver that enqueues this task.
    consumer: str = ""
    #: Whether the effect only writes to this database: then it commits with the delivery's
    #: completion (exactly once, one commit). Never for effects outside it (mail, HTTP).
    atomic: bool = False

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Enqueue; inside a dispatch, join its batch, and leave the message to the sweep if the broker fails."""
        batch = current_batch()
        if batch is None:
            return super().apply_async(args, kwargs, **options)
        if batch.failed is not None or batch.producer is None:
            return None
        # The batch declared the queues; short reprs spare Celery's saferepr (~80 µs a message).
        options.setdefault("declare", [])
        options.setdefault("argsrepr", repr(tuple(args or ())))
        options.setdefault("kwargsrepr", repr(kwargs or {}))
        try:
            return super().apply_async(args, kwargs, producer=batch.producer, **options)
        except BROKER_ERRORS as error:
            batch.failed = error
            return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        event_id = kwargs.get("event_id", args[0] if args else None)
        try:
            claim = services.delivery_claim(consumer=self.consumer, event_id=event_id)
        except (ValidationError, ValueError, TypeError):
            logger.error("%s dropped a message with a malformed event id", self.name)
            return None
        if claim is None:
            return None
        try:
            if self.atomic:
                # The effect and its completion commit together: exactly once, one commit.
                with transaction.atomic():
                    result = self.run(*args, **kwargs)
                    services.delivery_complete(delivery=claim)
            else:
                # The tracer already pushed this request: call run, not Task.__call__.
                result = self.run(*args, **kwargs)
                services.delivery_complete(delivery=claim)
        except Retry as retry:
            services.delivery_release(delivery=claim, retry_in=_seconds_until(retry.when), error=retry.exc)
            raise
        except BROKER_ERRORS as error:
            # The retry could not be enqueued: the delivery stays owed and the sweep brings it back.
            services.delivery_release(delivery=claim, retry_in=0, error=error)
            raise
        except Exception as error:
            services.delivery_fail(delivery=claim, error=error)
            raise
        return result


def _seconds_until(when: float | int | datetime | str | None) -> float:
    if when is None:
        return 0.0
    if isinstance(when, datetime):
        return max(0.0, (when - timezone.now()).total_seconds())
    if isinstance(when, str):
        return max(0.0, (datetime.fromisoformat(when) - timezone.now()).total_seconds())
    return float(when)
