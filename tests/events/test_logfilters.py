from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

from events.logfilters import RoutineTasksFilter

SWEEP = "events.tasks.sweep_deliveries"
OTHER = "notifications.tasks.send_welcome_email"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def console() -> Iterator[Collect]:
    """A console-like handler with the filter, on the loggers Celery writes its task lines to, at INFO."""
    handler = Collect()
    handler.addFilter(RoutineTasksFilter(tasks=[SWEEP]))
    loggers = [logging.getLogger(name) for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def celery_lines(task: str) -> None:
    """Log what Celery logs for one run of a task: beat sends it, a worker receives it, runs it."""
    # As celery.beat.Scheduler.apply_entry, celery.worker.strategy and celery.app.trace.info log them.
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", task.rsplit(".", 1)[-1], task)
    received = {"id": "t-1", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, received, extra={"data": received})
    succeeded = {"id": "t-1", "name": task, "return_value": 0, "runtime": 0.01, "args": "()", "kwargs": "{}"}
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, succeeded, extra={"data": succeeded})


def test_a_routine_sweep_writes_nothing_at_info(console: Collect) -> None:
    celery_lines(SWEEP)

    assert console.messages == []


def test_other_tasks_lines_are_kept(console: Collect) -> None:
    celery_lines(OTHER)

    assert console.messages == [
        f"Scheduler: Sending due task send_welcome_email ({OTHER})",
        f"Task {OTHER}[t-1] received",
        f"Task {OTHER}[t-1] succeeded in 0.01s: 0",
    ]


def test_a_sweeps_warnings_and_errors_are_kept(console: Collect) -> None:
    failed = {"id": "t-1", "name": SWEEP, "description": "raised unexpected", "exc": "boom"}
    logging.getLogger("celery.app.trace").error("Task %(name)s[%(id)s] %(description)s: %(exc)s", failed)

    assert console.messages == [f"Task {SWEEP}[t-1] raised unexpected: boom"]


def test_at_debug_the_sweeps_lines_show_again(console: Collect) -> None:
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    celery_lines(SWEEP)

    assert len(console.messages) == 3


def test_the_console_leaves_the_routine_sweep_out() -> None:
    [console] = [handler for handler in logging.getLogger().handlers if handler.get_name() == "console"]

    [routine] = [f for f in console.filters if isinstance(f, RoutineTasksFilter)]
    assert routine.tasks == {SWEEP}
