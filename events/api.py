"""The public API of the events app: the only module other apps import (tests may also use events.testing).

- `EventSignal`, `publish`: a producer stores an event with its deliveries and signals it on commit.
- `consumer`, `Consumer`, `consumers`, `consumers_of`, `get_consumer`: a side effect declared once, and the
  registry.
- `RetrySchedule`, `PermanentError`, `TransientError`, `is_transient`: how failures are retried.
- `operator_acted`, `OperatorActed`: operators paused, resumed or replayed (the audit log records them).
- `user_side_effects`, `event_link`, `user_link`, `SearchByUserEmail`: the operator's pages (a user's
  deliveries; ids as links; admin lists searched by the user's e-mail).
"""

from __future__ import annotations

from events.dashboard import SearchByUserEmail, event_link, user_link, user_side_effects
from events.declaration import consumer
from events.operations import OperatorActed, operator_acted
from events.publishing import DomainEvent, publish
from events.registry import Consumer, consumers, consumers_of, get_consumer
from events.retry import PermanentError, RetrySchedule, TransientError, is_transient
from events.signals import EventSignal

__all__ = [
    "Consumer",
    "DomainEvent",
    "EventSignal",
    "OperatorActed",
    "PermanentError",
    "RetrySchedule",
    "SearchByUserEmail",
    "TransientError",
    "consumer",
    "consumers",
    "consumers_of",
    "event_link",
    "get_consumer",
    "is_transient",
    "operator_acted",
    "publish",
    "user_link",
    "user_side_effects",
]
