"""The registry of consumers: data that publishing, draining and the operator's pages read; it calls none of them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Task, current_app

from events.breaker import CircuitBreaker
from events.doorbells import ring
from events.flow import Rate, RateSetting, resolve_rate
from events.retry import RetrySchedule
from events.signals import EventSignal

_consumers: dict[str, Consumer] = {}
_by_task_name: dict[str, Consumer] = {}


@dataclass(eq=False, kw_only=True)
class Consumer:
    """A side effect of one kind of event: its handler, its retry schedule, its Celery task and its receiver.

    The name ("<app label>.<handler>") is written nowhere else: it is the receiver's dispatch_uid,
    the Celery queue, the delivery rows' consumer, and what the admin, replay and checks show.
    """

    name: str
    signal: EventSignal
    handler: Callable[[Any], object]
    retry: RetrySchedule
    #: The effect only writes to this database: it commits with the delivery's completion (exactly once).
    atomic: bool = False
    #: The handler takes a list of events (an atomic consumer's whole batch, e.g. one bulk insert);
    #: a batch that fails is run again one event at a time, so one bad event fails alone.
    many: bool = False
    #: Deliveries one drain claims at once.
    batch_size: int = 20
    #: A context manager factory opened around each batch of a non-atomic consumer: what the batch's
    #: effects share (one SMTP connection, one HTTP session).
    session: Callable[[], AbstractContextManager[object]] | None = None
    #: The most deliveries per period the whole fleet makes ("10/s", or a setting read when used).
    rate: str | Rate | RateSetting | None = None
    #: Consumers naming the same bucket share one rate limit (one mail provider's quota); default: the name.
    rate_bucket: str = ""
    #: The most drains of this consumer running at once across the fleet (each runs one effect at a time).
    concurrency: int | None = None
    #: Stops trying a dead endpoint: its deliveries wait, one probe per interval, until it answers.
    breaker: CircuitBreaker | None = None
    #: How long after its event (or its replay) an effect is still worth doing; past it the delivery expires.
    deadline: timedelta | None = None
    #: The Celery task that drains this consumer's deliveries (set by its declaration).
    task: Task = field(init=False)

    @property
    def queue(self) -> str:
        return self.name

    @property
    def current_rate(self) -> Rate | None:
        """The rate limit in force now (None: unlimited)."""
        return resolve_rate(self.rate)

    @property
    def bucket(self) -> str:
        """The name of the rate limit this consumer draws on."""
        return self.rate_bucket or self.name

    @property
    def task_name(self) -> str:
        return f"{self.handler.__module__}.{self.handler.__name__}"

    def receive(self, sender: type[Any], *, event: Any, **kwargs: Any) -> None:
        """Enqueue this consumer's task: the event just committed is owed to it (its receiver)."""
        self.ring()

    def subscribe(self) -> None:
        """Connect the consumer's receiver to its signal: from now on each event published is owed to it."""
        self.signal.connect(self.receive, sender=self.signal.event_class, weak=False, dispatch_uid=self.name)

    def unsubscribe(self) -> None:
        """Disconnect the consumer's receiver: events published from now on owe it nothing."""
        self.signal.disconnect(sender=self.signal.event_class, dispatch_uid=self.name)

    @property
    def subscribed(self) -> bool:
        return self.signal.connected.get(self.name) == self.receive

    def ring(self, *, countdown: float | None = None, force: bool = False) -> None:
        """Tell a worker this consumer may have work (now, or in countdown seconds); never raises.

        An immediate ring adds no message while one of this consumer's is queued and unstarted,
        unless forced (the sweep, a drain that filled its batch).
        """
        ring(self.name, self.task, countdown=countdown, force=force)


def register(declared: Consumer) -> None:
    """Add a declared consumer to the registry; ValueError if another handler has its name."""
    known = _consumers.get(declared.name)
    if known is not None and known.handler is not declared.handler:
        raise ValueError(f"Consumer {declared.name} is declared twice")
    _consumers[declared.name] = declared
    _by_task_name[declared.task_name] = declared


def unregister(name: str) -> None:
    """Forget a consumer and unsubscribe it (a test's throwaway one, the bench without consumers)."""
    declared = _consumers.pop(name, None)
    if declared is not None:
        declared.unsubscribe()
        _by_task_name.pop(declared.task_name, None)
        current_app.tasks.pop(declared.task_name, None)


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str] | None:
    """Route a consumer's task to the consumer's own queue (a Celery router, named in CELERY_TASK_ROUTES)."""
    declared = _by_task_name.get(name)
    return {"queue": declared.queue} if declared is not None else None


def consumers() -> list[Consumer]:
    """Return every declared consumer, by name."""
    return [_consumers[name] for name in sorted(_consumers)]


def consumers_of(signal: EventSignal) -> list[Consumer]:
    """Return the consumers subscribed to signal now: each event it carries is owed to every one of them."""
    return [declared for declared in consumers() if declared.signal is signal and declared.subscribed]


def get_consumer(name: str) -> Consumer:
    """Return the consumer named name; KeyError if none is declared."""
    return _consumers[name]


def consumers_matching(names: list[str]) -> list[Consumer]:
    """Expand consumer names and app labels ("crm") into the consumers they select."""
    known = consumers()
    selected: list[Consumer] = []
    for name in names:
        matches = [c for c in known if c.name == name or c.name.startswith(f"{name}.")]
        if not matches:
            raise ValueError(f"No consumer is named {name!r}. Known: {', '.join(c.name for c in known)}")
        selected.extend(match for match in matches if match not in selected)
    return selected
