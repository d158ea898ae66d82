"""System checks: the configuration and the consumers the delivery guarantees rely on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celery import current_app
from django.core.checks import CheckMessage, Error, register

from events.conf import events_settings, problems
from events.deadlines import deadline_problem
from events.doorbells import DOORBELL_MAX_COUNTDOWN
from events.flow import RateSetting, resolve_rate
from events.registry import Consumer, consumers

MAX_PUBLISH_WAIT = 1.0
SWEEP_TASK = "events.tasks.sweep_deliveries"
# A killed worker's deliveries must come back within this many seconds of its death.
MAX_RECOVERY = 30.0


def delivery_guarantee_errors(
    *,
    conf: Mapping[str, Any],
    declared: Iterable[Consumer],
    routes: Mapping[str, str],
    lease: float,
    renew_every: float,
    sweep_interval: float,
) -> list[Error]:
    """Return an Error for each setting or consumer that breaks "nothing lost, nothing twice, nothing blocks"."""
    errors: list[Error] = []

    def fail(id_: str, msg: str, hint: str) -> None:
        errors.append(Error(msg, hint=hint, id=f"events.{id_}"))

    if list(conf["accept_content"]) != ["json"] or conf["task_serializer"] != "json":
        fail(
            "E001",
            "Celery must accept and send JSON only.",
            'Set CELERY_ACCEPT_CONTENT = ["json"] and CELERY_TASK_SERIALIZER = "json".',
        )
    time_limit = conf["task_time_limit"]
    if not time_limit:
        fail(
            "E003",
            "Tasks need a hard time limit: a drain stops starting work at half of it.",
            "Set EVENTS_TASK_TIME_LIMIT.",
        )
        time_limit = 0
    transport = conf["broker_transport_options"] or {}
    visibility = transport.get("visibility_timeout", 3600)
    if visibility <= time_limit + DOORBELL_MAX_COUNTDOWN:
        fail(
            "E004",
            f"The broker's visibility_timeout ({visibility} s) must exceed the task time limit plus the longest "
            f"doorbell countdown ({time_limit} + {DOORBELL_MAX_COUNTDOWN:g} s).",
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
    if renew_every <= 0 or lease < 3 * renew_every:
        fail(
            "E007",
            f"A lease ({lease:g} s) must last at least three renewals ({renew_every:g} s each), or a slow but "
            "live delivery loses its lease and runs twice.",
            "Set EVENTS_LEASE >= 3 * EVENTS_LEASE_RENEW_EVERY.",
        )
    sweep = [entry for entry in (conf["beat_schedule"] or {}).values() if entry.get("task") == SWEEP_TASK]
    if not sweep or sweep_interval <= 0:
        fail("E008", "The delivery sweep must be scheduled.", f"Schedule {SWEEP_TASK} in CELERY_BEAT_SCHEDULE.")
    if lease + sweep_interval > MAX_RECOVERY:
        fail(
            "E012",
            f"A killed worker's deliveries come back after its lease plus a sweep interval ({lease:g} + "
            f"{sweep_interval:g} s): keep it within {MAX_RECOVERY:g} s.",
            "Lower EVENTS_LEASE or EVENTS_SWEEP_INTERVAL.",
        )
    for consumer in declared:
        if not consumer.subscribed:
            fail(
                "E009",
                f"Consumer {consumer.name} is declared but not subscribed to {consumer.signal.event_class.name}: "
                "no event published from now on is owed to it, so it can never run again.",
                "Remove its declaration, or leave it subscribed (its declaration subscribes it).",
            )
        queue = routes.get(consumer.task.name)
        if queue != consumer.queue:
            fail(
                "E011",
                f"{consumer.task.name} must run on its own queue {consumer.queue!r} (routed to {queue!r}).",
                "Keep events.registry.route_task first in CELERY_TASK_ROUTES.",
            )
        if (problem := deadline_problem(consumer)) is not None:
            fail(
                "E015",
                problem,
                "Declare deadline=timedelta(...) above zero, or none for an effect that never goes stale.",
            )
    return errors


@register("events")
def check_delivery_guarantees(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Check Celery's configuration and every declared consumer against the delivery guarantees."""
    invalid = [Error(text, hint="events/conf.py documents each setting.", id="events.E013") for text in problems()]
    if invalid:
        return list(invalid)
    declared = consumers()
    routes = {}
    for consumer in declared:
        routes[consumer.task.name] = current_app.amqp.router.route({}, consumer.task.name)["queue"].name
    return list(
        delivery_guarantee_errors(
            conf=current_app.conf,
            declared=declared,
            routes=routes,
            lease=events_settings().lease,
            renew_every=events_settings().lease_renew_every,
            sweep_interval=events_settings().sweep_interval,
        )
    )


def rate_limit_errors(*, declared: Iterable[Consumer]) -> list[Error]:
    """Return an Error for each consumer whose rate limit setting does not parse, naming the setting."""
    errors: list[Error] = []
    for consumer in declared:
        try:
            resolve_rate(consumer.rate)
        except ValueError as error:
            setting = consumer.rate.name if isinstance(consumer.rate, RateSetting) else "its declaration"
            errors.append(
                Error(
                    f"{setting} ({consumer.name}'s rate limit) does not parse: {error}",
                    hint=f"Set {setting} to a rate such as 10/s, 600/min or 1000/h, or leave it empty (unlimited).",
                    id="events.E020",
                )
            )
    return errors


@register("events")
def check_rate_limits(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Check every consumer's rate limit (a setting read from the environment) parses."""
    return list(rate_limit_errors(declared=consumers()))
