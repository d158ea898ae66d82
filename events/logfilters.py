"""Keep the routine sweep out of the console: Celery's INFO lines about it would come every interval."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

# What Celery logs at INFO for every run of a task: beat sending it, a worker receiving it
# (its format arguments are the task's context, also given as `extra={"data": ...}` for handlers
# like this one) and finishing it.
BEAT_LOGGER = "celery.beat"
TASK_LOGGERS = frozenset({"celery.worker.strategy", "celery.app.trace"})


def _task_name(record: logging.LogRecord) -> str | None:
    if record.name == BEAT_LOGGER and str(record.msg).startswith("Scheduler: Sending due task"):
        # info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        return str(record.args[-1]) if isinstance(record.args, tuple) and record.args else None
    if record.name in TASK_LOGGERS:
        context = getattr(record, "data", None)
        if isinstance(context, Mapping):
            return str(context.get("name"))
    return None


class RoutineTasksFilter(logging.Filter):
    """Drop Celery's INFO lines about the routine tasks' runs (sent, received, succeeded); keep the rest.

    A routine task's warnings and errors, its own log lines (the sweep says what it rang) and every
    other task's lines pass. With Celery's loggers at DEBUG (`--loglevel DEBUG`) the routine lines show again.
    """

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        return _task_name(record) not in self.tasks
