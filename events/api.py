"""The event layer's public API for producers and consumers (tests may also use events.testing).

- `EventSignal`, `publish`: a producer stores an event with its deliveries and signals it on commit.
- `consumer`, `Consumer`, `consumers`, `consumers_of`, `get_consumer`: a side effect declared once, and the registry.
- `RetrySchedule`, `PermanentError`, `TransientError`, `RateLimited`: how failures are retried.
- `Rate`, `rate_setting`, `CircuitBreaker`: flow control toward an external system, declared on the consumer.
- `circuit_changed`, `CircuitChanged`: a consumer's circuit breaker opened or closed (the audit log records them).
- `fence`: before each send of an effect made of several, check the drain still holds its delivery.
- `operator_acted`, `OperatorActed`: operators paused, resumed or replayed (the audit log records them).

Other apps' admins use `events.operator.api` (ids as links, lists searched by e-mail, a user's side effects).
"""

from __future__ import annotations

from events.breaker import CircuitBreaker
from events.circuit import CircuitChanged, circuit_changed
from events.declaration import consumer
from events.draining import fence
from events.flow import Rate, rate_setting
from events.operations import OperatorActed, operator_acted
from events.publishing import publish
from events.registry import Consumer, consumers, consumers_of, get_consumer
from events.retry import PermanentError, RateLimited, RetrySchedule, TransientError
from events.signals import EventSignal

__all__ = [
    "CircuitBreaker",
    "CircuitChanged",
    "Consumer",
    "EventSignal",
    "OperatorActed",
    "PermanentError",
    "Rate",
    "RateLimited",
    "RetrySchedule",
    "TransientError",
    "circuit_changed",
    "consumer",
    "consumers",
    "consumers_of",
    "fence",
    "get_consumer",
    "operator_acted",
    "publish",
    "rate_setting",
]
