"""Enqueueing from a dispatch: one connection and one round trip for every task it enqueues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import redis
from celery import current_app
from kombu import Producer
from kombu.exceptions import BatchPublishError, OperationalError

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
class PublishingBatch:
    """The producer a dispatch's enqueues share, and whether the broker failed them."""

    producer: Producer | None = None
    failed: BaseException | None = None


_current_batch: ContextVar[PublishingBatch | None] = ContextVar("events_publishing_batch", default=None)


@contextmanager
def publishing_batch() -> Iterator[PublishingBatch]:
    """Send every ConsumerTask enqueued inside the block in one pipelined round trip, on exit.

    A broker error never escapes: it is recorded on the batch (`failed`), and after a first
    failure the remaining enqueues are skipped instead of each waiting for the broker's timeout.
    Whatever was not sent stays pending in the delivery records, for the sweep.
    """
    outer = _current_batch.get()
    if outer is not None:
        yield outer
        return
    batch = PublishingBatch()
    token = _current_batch.set(batch)
    try:
        with ExitStack() as stack:
            try:
                batch.producer = stack.enter_context(current_app.producer_or_acquire())
                stack.enter_context(batch.producer.batch())
            except BROKER_ERRORS as error:
                batch.failed = error
            yield batch
    except BROKER_ERRORS as error:
        # Raised by the flush on leaving producer.batch(): nothing of the batch is known to be sent.
        batch.failed = batch.failed or error
    finally:
        _current_batch.reset(token)


def current_batch() -> PublishingBatch | None:
    """Return the batch enqueues should join, if a dispatch is under way."""
    return _current_batch.get()
