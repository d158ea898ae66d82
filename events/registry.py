"""Consumers, each declared once: its name is its dispatch_uid, its queue and its route."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from celery import Task, current_app, shared_task
from django.apps import apps
from kombu import Queue

from events.retry import DATABASE_ERRORS, RetrySchedule
from events.signals import EventSignal

_consumers: dict[str, Consumer] = {}
_by_task_name: dict[str, Consumer] = {}

# Doorbells of a drain that met a database error wait this long at most before ringing again.
DOORBELL_RETRY_BACKOFF_MAX = 30


@dataclass(eq=False, kw_only=True)
class Consumer:
    """A side effect of one kind of event: its handler, its retry schedule and its Celery task.

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
    task: Task = field(init=False)

    @property
    def queue(self) -> str:
        return self.name

    def connect(self, receiver: Callable[..., Any]) -> None:
        """Connect receiver to the consumer's signal, named after the consumer."""
        self.signal.connect(receiver, sender=self.signal.event_class, dispatch_uid=self.name)

    def disconnect(self) -> None:
        """Disconnect the consumer's receiver."""
        self.signal.disconnect(sender=self.signal.event_class, dispatch_uid=self.name)

    @property
    def receiver_connected(self) -> bool:
        return self.name in self.signal.connected

    def ring(self, *, countdown: float | None = None, force: bool = False) -> None:
        """Tell a worker this consumer may have work (now, or in countdown seconds); never raises.

        An immediate ring adds no message while one of this consumer's is queued and unstarted,
        unless forced (the sweep, a drain that filled its batch).
        """
        from events.publishing import ring

        ring(self.name, self.task, countdown=countdown, force=force)


def consumer(
    signal: EventSignal,
    *,
    atomic: bool = False,
    many: bool = False,
    retry: RetrySchedule | None = None,
    batch_size: int = 20,
    session: Callable[[], AbstractContextManager[object]] | None = None,
) -> Callable[[Callable[[Any], object]], Consumer]:
    """Declare handler as a consumer of signal's events, with the Celery task that drains its deliveries."""

    if many and not atomic:
        raise ValueError("many=True is for atomic consumers: an external effect is recorded one by one")

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
        )
        register(declared)
        return declared

    return declare


def _app_label(module: str) -> str:
    config = apps.get_containing_app_config(module)
    return config.label if config is not None else module.split(".")[0]


def register(declared: Consumer) -> None:
    """Add a consumer to the registry and give it its task and queue."""
    known = _consumers.get(declared.name)
    if known is not None and known.handler is not declared.handler:
        raise ValueError(f"Consumer {declared.name} is declared twice")
    handler = declared.handler

    def drain() -> int:
        from events.draining import drain as drain_deliveries

        return drain_deliveries(declared)

    drain.__name__ = handler.__name__
    drain.__qualname__ = handler.__qualname__
    drain.__module__ = handler.__module__
    drain.__doc__ = handler.__doc__
    declared.task = shared_task(
        name=f"{handler.__module__}.{handler.__name__}",
        ignore_result=True,
        # A doorbell lost with its worker loses nothing (the rows are the truth): acknowledge early.
        acks_late=False,
        # The database being down is the one failure of a drain itself: ring again later, never drop.
        autoretry_for=DATABASE_ERRORS,
        retry_backoff=1,
        retry_backoff_max=DOORBELL_RETRY_BACKOFF_MAX,
        retry_jitter=True,
        max_retries=None,
    )(drain)
    # A plain `celery -A config worker` consumes every consumer's queue; `-Q` still selects.
    current_app.amqp.queues.select_add(Queue(declared.queue, routing_key=declared.queue))
    _consumers[declared.name] = declared
    _by_task_name[declared.task.name] = declared


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str] | None:
    """Route a consumer's task to the consumer's own queue (a Celery router, named in CELERY_TASK_ROUTES)."""
    declared = _by_task_name.get(name)
    return {"queue": declared.queue} if declared is not None else None


def unregister(name: str) -> None:
    """Forget a consumer (a test's throwaway one)."""
    declared = _consumers.pop(name, None)
    if declared is not None:
        declared.disconnect()
        _by_task_name.pop(declared.task.name, None)
        current_app.tasks.pop(declared.task.name, None)


def consumers() -> list[Consumer]:
    """Return every declared consumer, by name."""
    return [_consumers[name] for name in sorted(_consumers)]


def consumers_of(signal: EventSignal) -> list[Consumer]:
    """Return the consumers owed a delivery of each event signal carries."""
    return [declared for declared in consumers() if declared.signal is signal]


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
