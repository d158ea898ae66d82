"""Doorbells: telling a worker that a consumer may have work, one round trip for every ring of a block."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import redis
from celery import Task, current_app
from django.conf import settings
from kombu import Producer
from kombu.exceptions import BatchPublishError, OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from events.conf import events_settings

logger = logging.getLogger(__name__)

# A retry due within this many seconds rings its doorbell with a countdown; later ones wait for
# the sweep (a countdown message sits in a worker's memory until it is due).
DOORBELL_MAX_COUNTDOWN = 60.0

# What a down, frozen or restarting Redis raises at publish time.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    BatchPublishError,
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
)


@dataclass
class Doorbells:
    """The rings of a block, sent together on exit, and whether the broker failed them."""

    producer: Producer | None = None
    failed: BaseException | None = None
    # True once the outermost block has exited and the broker took its rings (or it had none).
    sent: bool = False
    # Immediate rings by consumer name (the task, and whether to ring even if one is queued).
    pending: dict[str, tuple[Task, bool]] = field(default_factory=dict)


_current: ContextVar[Doorbells | None] = ContextVar("events_doorbells", default=None)

# A consumer's doorbell flag: set while a doorbell of it is queued and its drain has not started.
# Rings while it is set add nothing (the queued drain will see the new rows); it expires on its own
# so a lost doorbell holds back later rings for at most this long (the sweep rings regardless).
DOORBELL_FLAG = "events:doorbell:{}"


def broker_redis() -> redis.Redis:
    """Return this process's client of the broker's Redis: a frozen Redis holds no caller longer than 0.5 s."""
    return _redis(settings.CELERY_BROKER_URL)


@functools.cache
def _redis(url: str) -> redis.Redis:
    # The broker's Redis, with the publisher's timeouts: a frozen Redis must not hold a signup. One
    # client (and connection pool, which redis-py renews after a fork) a process: a new connection
    # costs ~4 ms here.
    # No retries either (redis-py retries a timed-out command three times by default).
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))


@contextmanager
def doorbells() -> Iterator[Doorbells]:
    """Ring every consumer rung inside the block once, on exit: one round trip for the doorbell flags,
    one pipelined publish (kombu's Producer.batch) for the doorbells not already queued.

    A broker error never escapes: it is recorded (`failed`) and the rows wait for the sweep.
    """
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    batch = Doorbells()
    token = _current.set(batch)
    try:
        yield batch
        if batch.pending and batch.failed is None:
            _send(batch)
        batch.sent = batch.failed is None
    finally:
        _current.reset(token)


def _send(batch: Doorbells) -> None:
    """Set the flags of the pending rings, then publish the doorbells of those not already queued."""
    names = list(batch.pending)
    ttl_ms = max(1, int(events_settings().doorbell_ttl_seconds * 1000))
    try:
        with broker_redis().pipeline(transaction=False) as pipe:
            for name in names:
                pipe.set(DOORBELL_FLAG.format(name), 1, px=ttl_ms, nx=not batch.pending[name][1])
            fresh = pipe.execute()
        due = [batch.pending[name][0] for name, was_set in zip(names, fresh, strict=True) if was_set]
        if not due:
            return
        with current_app.producer_or_acquire() as producer, producer.batch():
            for task in due:
                task.apply_async(producer=producer)
    except BROKER_ERRORS as error:
        batch.failed = error


def ring(consumer: str, task: Task, *, countdown: float | None = None, force: bool = False) -> None:
    """Ring a consumer's doorbell (enqueue its drain, no arguments), unless one is already queued.

    force rings even then (the sweep; a drain that filled its batch). A countdown ring is sent
    as is, for later. A broker error is logged, never raised.
    """
    if countdown is not None:
        try:
            task.apply_async(countdown=countdown)
        except BROKER_ERRORS as error:
            logger.warning("Broker unavailable (%s): %s waits for the sweep", type(error).__name__, consumer)
        return
    batch = _current.get()
    if batch is None:
        with doorbells() as batch:
            ring(consumer, task, force=force)
        if batch.failed is not None:
            logger.warning("Broker unavailable (%s): %s waits for the sweep", type(batch.failed).__name__, consumer)
        return
    _task, forced = batch.pending.get(consumer, (task, False))
    batch.pending[consumer] = (task, forced or force)


def doorbell_answered(consumer: str) -> None:
    """Clear the consumer's flag as its drain starts: a ring from now on is for rows it may not see."""
    try:
        broker_redis().delete(DOORBELL_FLAG.format(consumer))
    except BROKER_ERRORS:
        pass  # The flag expires on its own; the sweep rings meanwhile.


def forget_doorbells() -> None:
    """Clear every consumer's flag (tests start from an empty broker)."""
    client = broker_redis()
    keys = list(client.scan_iter(DOORBELL_FLAG.format("*")))
    if keys:
        client.delete(*keys)
