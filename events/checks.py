"""A system check that fails on any configuration that would break the delivery guarantees."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from events.consumers import ConsumerTask
from events.retry import RETRY_BACKOFF_MAX
from events.signals import event_signals

MAX_PUBLISH_WAIT = 1.0
SWEEP_TASK = "events.tasks.sweep_deliveries"


def delivery_guarantee_errors(
    *,
    conf: Mapping[str, Any],
    consumer_tasks: Iterable[ConsumerTask],
    consumers: Iterable[str],
    routes: Mapping[str, str],
    lease: float,
    redelivery_after: float,
) -> list[Error]:
    """Return an Error for each setting that breaks "nothing lost, nothing twice, nothing blocks"."""
    errors: list[Error] = []

    def fail(id_: str, msg: str, hint: str) -> None:
        errors.append(Error(msg, hint=hint, id=f"events.{id_}"))

    if list(conf["accept_content"]) != ["json"] or conf["task_serializer"] != "json":
        fail(
            "E001",
            "Celery must accept and send JSON only.",
            'Set CELERY_ACCEPT_CONTENT = ["json"] and CELERY_TASK_SERIALIZER = "json".',
        )
    if conf["worker_prefetch_multiplier"] != 1:
        fail("E002", "A worker must prefetch one message at a time.", "Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1.")
    time_limit = conf["task_time_limit"]
    if not time_limit:
        fail(
            "E003",
            "Tasks need a hard time limit: leases and the visibility timeout are sized by it.",
            "Set EVENTS_TASK_TIME_LIMIT.",
        )
        time_limit = 0
    transport = conf["broker_transport_options"] or {}
    visibility = transport.get("visibility_timeout", 3600)
    if visibility <= time_limit + RETRY_BACKOFF_MAX:
        fail(
            "E004",
            f"The broker's visibility_timeout ({visibility} s) must exceed the task time limit plus the longest "
            f"retry countdown ({time_limit} + {RETRY_BACKOFF_MAX} s), or Redis redelivers messages still in work.",
            "Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'].",
        )
    for option in ("socket_connect_timeout", "socket_timeout"):
        value = transport.get(option)
        if value is None or value > MAX_PUBLISH_WAIT:
            fail(
                "E005",
                f"The broker's {option} must be set and at most {MAX_PUBLISH_WAIT} s, or a down broker blocks signups.",
                f"Set CELERY_BROKER_TRANSPORT_OPTIONS['{option}'].",
            )
    if conf["task_publish_retry"]:
        fail("E006", "Publishing must not retry at request time.", "Set CELERY_TASK_PUBLISH_RETRY = False.")
    if lease <= time_limit:
        fail("E007", "A delivery's lease must outlive the task time limit.", "EVENTS_LEASE must exceed the time limit.")
    sweep = [entry for entry in (conf["beat_schedule"] or {}).values() if entry.get("task") == SWEEP_TASK]
    if not sweep or redelivery_after <= 0:
        fail(
            "E008",
            "The delivery sweep must be scheduled and EVENTS_REDELIVERY_AFTER positive.",
            f"Schedule {SWEEP_TASK} in CELERY_BEAT_SCHEDULE.",
        )

    tasks_by_consumer = {task.consumer: task for task in consumer_tasks}
    declared_queues = {queue.name for queue in conf["task_queues"] or ()}
    for consumer in sorted(set(consumers)):
        task = tasks_by_consumer.get(consumer)
        if task is None:
            fail(
                "E009",
                f"Consumer {consumer} has no ConsumerTask (consumer={consumer!r}).",
                "Declare its task with base=ConsumerTask.",
            )
            continue
        if not (task.acks_late and task.reject_on_worker_lost):
            fail(
                "E010",
                f"{task.name} must acknowledge late and reject on worker loss.",
                "It is idempotent: keep acks_late and reject_on_worker_lost on.",
            )
        queue = routes.get(task.name)
        if queue != consumer or queue not in declared_queues:
            fail(
                "E011",
                f"{task.name} must run on its own declared queue {consumer!r} (routed to {queue!r}).",
                "Add it to CELERY_TASK_ROUTES.",
            )
    return errors


@register("events")
def check_delivery_guarantees(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Check Celery's configuration and every consumer's task against the delivery guarantees."""
    consumer_tasks = [task for task in current_app.tasks.values() if isinstance(task, ConsumerTask)]
    return list(
        delivery_guarantee_errors(
            conf=current_app.conf,
            consumer_tasks=consumer_tasks,
            consumers=[consumer for signal in event_signals.values() for consumer in signal.consumers],
            routes={task.name: current_app.amqp.router.route({}, task.name)["queue"].name for task in consumer_tasks},
            lease=settings.EVENTS_LEASE,
            redelivery_after=settings.EVENTS_REDELIVERY_AFTER,
        )
    )
