"""Read what was enqueued, straight from the real Redis broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery


@dataclass(frozen=True)
class QueuedTask:
    """A task message found on a queue."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]


def purge_queues(app: Celery) -> None:
    """Empty every queue the project declares."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).purge()


def drain_queue(app: Celery, queue_name: str) -> list[QueuedTask]:
    """Take every message off queue_name and return the tasks they carry."""
    found: list[QueuedTask] = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            args, kwargs, _embed = message.decode()
            found.append(QueuedTask(name=message.headers["task"], args=list(args), kwargs=dict(kwargs)))
            message.ack()
        queue.close()
    return found
