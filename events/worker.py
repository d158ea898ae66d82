"""What the event layer adds to `celery -A config worker`: --consumers, and a heartbeat per queue consumed.

`--consumers atomic|external`: a worker for one kind of consumer.

Effects outside this database (mail, the CRM) wait on other systems; a stalled one holds every
pool process that drains it. Run their queues on workers of their own and the atomic consumers
(audit, analytics) keep flowing: `--consumers atomic` consumes every queue but the external
consumers', `--consumers external` only theirs. Without the option a worker consumes every queue.

The heartbeat: while a worker's consumer is connected and consuming, it says so in the broker's
Redis every few seconds, one key per queue; readiness (/readyz) asks those keys, not a ping, so a
worker alive but deaf (its consumer dead after a broker outage) is seen within seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import click
from celery import Celery, bootsteps
from celery.exceptions import ImproperlyConfigured

from events import registry
from events.conf import events_settings
from events.doorbells import BROKER_ERRORS, broker_redis

logger = logging.getLogger(__name__)

KINDS = ("all", "atomic", "external")
# A consuming worker renews its queues' keys this often; a key lives three beats.
HEARTBEAT_EVERY = 5
HEARTBEAT_KEY = "events:consuming:{}"


def heartbeat(*, queues: Iterable[str], worker: str) -> None:
    """Say that worker consumes queues now."""
    with broker_redis().pipeline() as pipe:
        for queue in queues:
            pipe.set(HEARTBEAT_KEY.format(queue), worker, ex=HEARTBEAT_EVERY * 3)
        pipe.execute()


def expected_queues() -> list[str]:
    """The queues some worker must consume: every consumer's, and the sweep's."""
    return sorted({declared.queue for declared in registry.consumers()} | {events_settings().sweep_queue})


def consumed(queues: Iterable[str]) -> set[str]:
    """Return those of queues some worker said it consumed within the last three beats."""
    names = list(queues)
    answers = broker_redis().mget([HEARTBEAT_KEY.format(queue) for queue in names]) if names else []
    return {queue for queue, answer in zip(names, answers, strict=True) if answer}


class Heartbeat(bootsteps.StartStopStep):
    """While the worker's consumer consumes (between its start and stop), beat for each of its queues."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **options: Any) -> None:
        super().__init__(parent, **options)
        self._timer: Any = None

    def start(self, c: Any) -> None:
        self._beat(c)
        # On the consumer's own event loop: a consumer that stopped consuming stops beating too.
        self._timer = c.timer.call_repeatedly(HEARTBEAT_EVERY, self._beat, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)

    def _beat(self, c: Any) -> None:
        try:
            heartbeat(queues=[queue.name for queue in c.task_consumer.queues], worker=c.hostname)
        except BROKER_ERRORS as error:
            logger.debug("Heartbeat not written (%s): the next beat tries again", type(error).__name__)


class ConsumerSelection(bootsteps.Step):
    """Narrow the queues a worker consumes to one kind of consumer (after -Q, before consuming starts)."""

    def __init__(self, parent: Any, consumers: str = "all", **options: Any) -> None:
        super().__init__(parent, **options)
        kind = consumers  # the option's name, which Celery passes as a keyword
        if kind == "all":
            return
        queues = parent.app.amqp.queues
        current = set(queues.consume_from)
        external = {declared.queue for declared in registry.consumers() if not declared.atomic}
        keep = current & external if kind == "external" else current - external
        if not keep:
            raise ImproperlyConfigured(f"--consumers {kind} leaves this worker no queue to consume")
        queues.select(sorted(keep))


def install(app: Celery) -> None:
    """Give app's worker command the --consumers option, and its consumer the heartbeat."""
    app.user_options["worker"].add(
        click.Option(
            ("--consumers",),
            type=click.Choice(KINDS),
            default="all",
            show_default=True,
            help="Drain only atomic consumers (and the sweep), only external ones, or all.",
        )
    )
    app.steps["worker"].add(ConsumerSelection)
    app.steps["consumer"].add(Heartbeat)
