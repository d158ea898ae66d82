"""Declaring a consumer: one decorator gives a handler its name, its Celery task, its queue and its receiver."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from celery import current_app, shared_task
from django.apps import apps
from kombu import Queue

from events.breaker import CircuitBreaker
from events.draining import drain
from events.flow import Rate, RateSetting
from events.registry import Consumer, register
from events.retry import DATABASE_ERRORS, RetrySchedule, database_unavailable_raised
from events.signals import EventSignal

# Doorbells of a drain that met a database error wait this long at most before ringing again.
DOORBELL_RETRY_BACKOFF_MAX = 30


def consumer(
    signal: EventSignal,
    *,
    atomic: bool = False,
    many: bool = False,
    retry: RetrySchedule | None = None,
    batch_size: int = 20,
    session: Callable[[], AbstractContextManager[object]] | None = None,
    rate: str | Rate | RateSetting | None = None,
    rate_bucket: str = "",
    concurrency: int | None = None,
    breaker: CircuitBreaker | None = None,
    deadline: timedelta | None = None,
) -> Callable[[Callable[[Any], object]], Consumer]:
    """Declare handler as a consumer of signal's events: its drain task, its queue, and its receiver, subscribed.

    Declarations live in each consumer app's tasks.py, which the events app imports as Django
    starts (EventsConfig.ready), so every process has the same subscribers before it publishes.
    """

    if many and not atomic:
        raise ValueError("many=True is for atomic consumers: an external effect is recorded one by one")
    if isinstance(rate, str):
        Rate.parse(rate)  # a typo fails as Django starts, not at the first drain
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be 1 or more")
    if breaker is not None and atomic:
        raise ValueError("A circuit breaker is for an endpoint outside the database: not for an atomic consumer")

    def declare(handler: Callable[[Any], object]) -> Consumer:
        declared = Consumer(
            name=f"{_app_label(handler.__module__)}.{handler.__name__}",
            signal=signal,
            handler=handler,
            retry=retry or RetrySchedule(),
            atomic=atomic,
            many=many,
            batch_size=batch_size,
            session=session,
            rate=rate,
            rate_bucket=rate_bucket,
            concurrency=concurrency,
            breaker=breaker,
            deadline=deadline,
        )
        register(declared)
        declared.task = _drain_task(declared)
        declared.subscribe()
        return declared

    return declare


def _app_label(module: str) -> str:
    config = apps.get_containing_app_config(module)
    return config.label if config is not None else module.split(".")[0]


def _drain_task(declared: Consumer) -> Any:
    """Return the Celery task that drains declared's deliveries, on the consumer's own queue."""
    handler = declared.handler

    def run() -> int:
        with database_unavailable_raised():
            return drain(declared)

    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__module__ = handler.__module__
    run.__doc__ = handler.__doc__
    task = shared_task(
        name=declared.task_name,
        ignore_result=True,
        # A doorbell lost with its worker loses nothing (the rows are the truth): acknowledge early.
        acks_late=False,
        # The database being down is the one failure of a drain itself: ring again later, never drop.
        autoretry_for=DATABASE_ERRORS,
        retry_backoff=1,
        retry_backoff_max=DOORBELL_RETRY_BACKOFF_MAX,
        retry_jitter=True,
        max_retries=None,
    )(run)
    # A plain `celery -A config worker` consumes every consumer's queue; `-Q` still selects.
    current_app.amqp.queues.select_add(Queue(declared.queue, routing_key=declared.queue))
    return task
