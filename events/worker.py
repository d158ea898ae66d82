"""What the event layer adds to `celery -A config worker`: --consumers, and a heartbeat per queue consumed.

`--consumers atomic|external`: a worker for one kind of consumer.

Effects outside this database (mail, the CRM) wait on other systems; a stalled one holds every
pool process that drains it. Run their queues on workers of their own and the atomic consumers
(audit, analytics) keep flowing: `--consumers atomic` consumes every queue but the external
consumers', `--consumers external` only theirs. Without the option a worker consumes every queue.

The heartbeat: while a worker's consumer is connected and consuming, it says so in the broker's
Redis every few seconds, for each queue it consumes at that moment; readiness (/readyz) asks
those keys, not a ping, so a worker alive but deaf (its consumer dead after a broker outage) is
seen within three beats, and a queue the worker stopped consuming within one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import click
import redis
from celery import Celery, bootsteps
from celery.exceptions import ImproperlyConfigured

from events import registry
from events.conf import events_settings
from events.doorbells import BROKER_ERRORS, broker_redis

logger = logging.getLogger(__name__)

KINDS = ("all", "atomic", "external")
# A consuming worker renews its queues' keys this often; a key lives three beats.
HEARTBEAT_EVERY = 5
# Per queue, the set of workers that said they consume it (the set lives as long as one beats)...
# Not the name the heartbeat's earlier plain key had: old and new workers overlap in a deploy.
HEARTBEAT_KEY = "events:consumers:{}"
# ...and per queue and worker, the word of that worker, which lives three beats unless renewed.
PRESENCE_KEY = "events:consumers:{}:{}"


def heartbeat(*, queues: Iterable[str], worker: str, stopped: Iterable[str] = ()) -> None:
    """Say that worker consumes queues now, and no longer consumes stopped."""
    ttl = HEARTBEAT_EVERY * 3
    with broker_redis().pipeline() as pipe:
        for queue in queues:
            pipe.set(PRESENCE_KEY.format(queue, worker), 1, ex=ttl)
            pipe.sadd(HEARTBEAT_KEY.format(queue), worker)
            pipe.expire(HEARTBEAT_KEY.format(queue), ttl)
        for queue in stopped:
            pipe.delete(PRESENCE_KEY.format(queue, worker))
            pipe.srem(HEARTBEAT_KEY.format(queue), worker)
        pipe.execute()


def expected_queues() -> list[str]:
    """The queues some worker must consume: every consumer's, and the sweep's."""
    return sorted({declared.queue for declared in registry.consumers()} | {events_settings().sweep_queue})


def consumed(queues: Iterable[str]) -> set[str]:
    """Return those of queues some live worker said it consumes (within its last three beats, and not since stopped)."""
    names = list(queues)
    if not names:
        return set()
    client = broker_redis()
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            pipe.smembers(HEARTBEAT_KEY.format(queue))
        members = [
            (queue, worker.decode()) for queue, workers in zip(names, pipe.execute(), strict=True) for worker in workers
        ]
    if not members:
        return set()
    with client.pipeline(transaction=False) as pipe:
        for queue, worker in members:
            pipe.exists(PRESENCE_KEY.format(queue, worker))
        alive = pipe.execute()
    gone = [(queue, worker) for (queue, worker), present in zip(members, alive, strict=True) if not present]
    if gone:
        # A worker that died without a word: its presence expired; forget it here.
        with client.pipeline(transaction=False) as pipe:
            for queue, worker in gone:
                pipe.srem(HEARTBEAT_KEY.format(queue), worker)
            pipe.execute()
    return {queue for (queue, _worker), present in zip(members, alive, strict=True) if present}


def consuming(c: Any) -> set[str]:
    """The queues c's task consumer consumes at this moment (a cancelled queue is not among them)."""
    task_consumer = c.task_consumer
    if task_consumer is None:
        return set()
    return {queue.name for queue in task_consumer.queues if task_consumer.consuming_from(queue)}


class Heartbeat(bootsteps.StartStopStep):
    """While the worker's consumer consumes (between its start and stop), beat for each queue it consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **options: Any) -> None:
        super().__init__(parent, **options)
        self._timer: Any = None
        self._beating: set[str] = set()

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
        # A worker that stops says so, rather than being counted for three more beats.
        self._write(c, queues=set())

    def _beat(self, c: Any) -> None:
        # Asked of the consumer at each beat: a queue it stopped consuming (its consumer
        # cancelled) is no longer claimed from this beat on.
        self._write(c, queues=consuming(c))

    def _write(self, c: Any, *, queues: set[str]) -> None:
        try:
            heartbeat(queues=sorted(queues), worker=c.hostname, stopped=sorted(self._beating - queues))
        except (*BROKER_ERRORS, redis.ResponseError) as error:
            logger.debug("Heartbeat not written (%s): the next beat tries again", type(error).__name__)
            return
        self._beating = queues


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
