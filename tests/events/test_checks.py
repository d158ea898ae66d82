from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.conf import settings
from django.core.management import call_command

from events import registry
from events.api import consumer, consumers, get_consumer
from events.checks import check_delivery_guarantees, delivery_guarantee_errors
from users.events import UserCreated
from users.signals import user_created


def project_inputs(**conf_changes: Any) -> dict[str, Any]:
    """The check's inputs as the project configures them, with conf_changes applied."""
    conf = {
        key: current_app.conf[key]
        for key in (
            "accept_content", "task_serializer", "task_time_limit", "broker_transport_options",
            "task_publish_retry", "beat_schedule",
        )
    } | conf_changes  # fmt: skip
    declared = consumers()
    return {
        "conf": conf,
        "declared": declared,
        "routes": {c.task.name: c.queue for c in declared},
        "lease": settings.EVENTS_LEASE,
        "renew_every": settings.EVENTS_LEASE_RENEW_EVERY,
        "sweep_interval": settings.EVENTS_SWEEP_INTERVAL,
    }


def error_ids(**inputs: Any) -> set[str]:
    return {error.id for error in delivery_guarantee_errors(**inputs)}


@pytest.mark.django_db
def test_the_project_configuration_keeps_every_guarantee() -> None:
    assert check_delivery_guarantees(None) == []
    call_command("check", "--fail-level", "ERROR")


TIMEOUTS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"accept_content": ["json", "pickle"]}, "events.E001"),
        ({"task_serializer": "pickle"}, "events.E001"),
        ({"task_time_limit": None}, "events.E003"),
        ({"broker_transport_options": {"visibility_timeout": 90, **TIMEOUTS}}, "events.E004"),
        ({"broker_transport_options": {"visibility_timeout": 3600, "socket_connect_timeout": 0.5}}, "events.E005"),
        ({"broker_transport_options": {"visibility_timeout": 3600, **TIMEOUTS, "socket_timeout": 5}}, "events.E005"),
        ({"task_publish_retry": True}, "events.E006"),
        ({"beat_schedule": {}}, "events.E008"),
    ],
)
def test_a_configuration_that_breaks_a_guarantee_fails_the_check(changes: dict[str, Any], expected: str) -> None:
    assert expected in error_ids(**project_inputs(**changes))


def test_a_lease_renewed_too_rarely_fails_the_check() -> None:
    inputs = project_inputs()
    inputs["lease"] = 2 * inputs["renew_every"]

    assert "events.E007" in error_ids(**inputs)


def test_a_recovery_slower_than_thirty_seconds_fails_the_check() -> None:
    inputs = project_inputs()
    inputs["sweep_interval"] = 30

    assert "events.E012" in error_ids(**inputs)


def test_a_consumer_no_longer_subscribed_fails_the_check() -> None:
    @consumer(user_created)
    def forgotten(event: UserCreated) -> None:
        """Never owed anything again."""

    forgotten.unsubscribe()
    try:
        ids = [error.id for error in check_delivery_guarantees(None)]
    finally:
        registry.unregister(forgotten.name)

    assert ids == ["events.E009"]


def test_a_consumer_routed_to_another_queue_fails_the_check() -> None:
    inputs = project_inputs()
    audit = get_consumer("audit.record_user_created")
    inputs["routes"] = {**inputs["routes"], audit.task.name: "default"}

    assert [error.id for error in delivery_guarantee_errors(**inputs)] == ["events.E011"]
