"""Enqueueing from a dispatch: one connection and one round trip for every task it enqueues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from celery import current_app
from kombu import Producer


class BrokerUnavailable(Exception):
    """An earlier publish of this dispatch failed: the rest are left to the sweep."""


@dataclass
class _Batch:
    producer: Producer
    failed: bool = False


_current_batch: ContextVar[_Batch | None] = ContextVar("events_publishing_batch", default=None)


@contextmanager
def publishing_batch() -> Iterator[None]:
    """Send every ConsumerTask enqueued inside the block in one pipelined round trip, on exit.

    The broker's error, if any, is raised at exit; after a first failure inside the block the
    remaining enqueues fail at once instead of each waiting for the broker's timeout.
    """
    if _current_batch.get() is not None:
        yield
        return
    with current_app.producer_or_acquire() as producer:
        token = _current_batch.set(_Batch(producer=producer))
        try:
            with producer.batch():
                yield
        finally:
            _current_batch.reset(token)


def current_batch() -> _Batch | None:
    """Return the batch enqueues should join, if a dispatch is under way."""
    return _current_batch.get()
