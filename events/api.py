"""The event layer's public API for producers and consumers (tests may also use events.testing).

- `EventSignal`, `publish`: a producer stores an event with its deliveries and signals it on commit.
- `consumer`, `Consumer`, `consumers`, `consumers_of`, `get_consumer`: a side effect declared once, and the registry.
- `RetrySchedule`, `PermanentError`, `TransientError`: how failures are retried.
- `fence`: before each send of an effect made of several, check the drain still holds its delivery.
- `operator_acted`, `OperatorActed`: operators paused, resumed or replayed (the audit log records them).

Other apps' admins use `events.operator.api` (ids as links, lists searched by e-mail, a user's side effects).
"""

from __future__ import annotations

from events.declaration import consumer
from events.draining import fence
from events.operations import OperatorActed, operator_acted
from events.publishing import publish
from events.registry import Consumer, consumers, consumers_of, get_consumer
from events.retry import PermanentError, RetrySchedule, TransientError
from events.signals import EventSignal

__all__ = [
    "Consumer",
    "EventSignal",
    "OperatorActed",
    "PermanentError",
    "RetrySchedule",
    "TransientError",
    "consumer",
    "consumers",
    "consumers_of",
    "fence",
    "get_consumer",
    "operator_acted",
    "publish",
]
