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
                _declare_task_queues(batch.producer)
                stack.enter_context(batch.producer.batch())
            except BROKER_ERRORS as error:
                batch.failed = error
            yield batch
    except BROKER_ERRORS as error:
        # Raised by the flush on leaving producer.batch(): nothing of the batch is known to be sent.
        batch.failed = batch.failed or error
    finally:
        _current_batch.reset(token)


def _declare_task_queues(producer: Producer) -> None:
    """Declare the project's queues on this connection unless kombu remembers doing so.

    Celery would declare a message's queue before each publish (a copy and a bind of the
    queue every time); once per connection is enough, and kombu forgets on reconnecting.
    """
    declared = producer.connection.declared_entities  # kombu keeps hash(entity), as maybe_declare does
    for queue in current_app.amqp.queues.values():
        if hash(queue) not in declared:
            producer.maybe_declare(queue)


def current_batch() -> PublishingBatch | None:
    """Return the batch enqueues should join, if a dispatch is under way."""
    return _current_batch.get()


def freeze_celery_configuration() -> None:
    """Copy Celery's settings out of django.conf.settings, once Django is set up.

    Celery reads its configuration through Django's lazy settings on every lookup, trying each
    key with and without the CELERY_ prefix: about 60 µs a lookup, six lookups a message. Copied
    into Celery's own mapping, a lookup is a dict hit.
    """
    from celery.app.defaults import DEFAULTS
    from django.conf import settings

    conf = current_app.conf
    custom = {name.removeprefix("CELERY_").lower() for name in dir(settings) if name.startswith("CELERY_")}
    frozen = {}
    for key in set(DEFAULTS) | custom:
        try:
            frozen[key] = conf[key]
        except KeyError:
            continue
    conf.changes.update(frozen)
