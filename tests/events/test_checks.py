from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.conf import settings
from django.core.management import call_command

from events.checks import check_delivery_guarantees, delivery_guarantee_errors
from events.consumers import ConsumerTask
from events.signals import event_signals


def project_inputs(**conf_changes: Any) -> dict[str, Any]:
    """The check's inputs as the project configures them, with conf_changes applied."""
    tasks = [task for task in current_app.tasks.values() if isinstance(task, ConsumerTask)]
    conf = {
        key: current_app.conf[key]
        for key in (
            "accept_content", "task_serializer", "worker_prefetch_multiplier", "task_time_limit",
            "broker_transport_options", "task_publish_retry", "beat_schedule", "task_queues",
        )
    } | conf_changes  # fmt: skip
    return {
        "conf": conf,
        "consumer_tasks": tasks,
        "consumers": [consumer for signal in event_signals.values() for consumer in signal.consumers],
        "routes": {task.name: current_app.amqp.router.route({}, task.name)["queue"].name for task in tasks},
        "lease": settings.EVENTS_LEASE,
        "redelivery_after": settings.EVENTS_REDELIVERY_AFTER,
    }


def error_ids(**inputs: Any) -> set[str]:
    return {error.id for error in delivery_guarantee_errors(**inputs)}


@pytest.mark.django_db
def test_the_project_configuration_keeps_every_guarantee() -> None:
    assert check_delivery_guarantees(None) == []
    call_command("check", "--fail-level", "ERROR")


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"accept_content": ["json", "pickle"]}, "events.E001"),
        ({"task_serializer": "pickle"}, "events.E001"),
        ({"worker_prefetch_multiplier": 4}, "events.E002"),
        ({"task_time_limit": None}, "events.E003"),
        (
            {
                "broker_transport_options": {
                    "visibility_timeout": 300,
                    "socket_timeout": 0.5,
                    "socket_connect_timeout": 0.5,
                }
            },
            "events.E004",
        ),
        ({"broker_transport_options": {"visibility_timeout": 3600, "socket_connect_timeout": 0.5}}, "events.E005"),
        (
            {
                "broker_transport_options": {
                    "visibility_timeout": 3600,
                    "socket_timeout": 5,
                    "socket_connect_timeout": 0.5,
                }
            },
            "events.E005",
        ),
        ({"task_publish_retry": True}, "events.E006"),
        ({"beat_schedule": {}}, "events.E008"),
    ],
)
def test_a_configuration_that_breaks_a_guarantee_fails_the_check(changes: dict[str, Any], expected: str) -> None:
    assert expected in error_ids(**project_inputs(**changes))


def test_a_lease_shorter_than_the_time_limit_fails_the_check() -> None:
    inputs = project_inputs()
    inputs["lease"] = inputs["conf"]["task_time_limit"]

    assert "events.E007" in error_ids(**inputs)


def test_a_consumer_without_its_task_or_its_queue_fails_the_check() -> None:
    inputs = project_inputs()
    inputs["consumers"] = [*inputs["consumers"], "billing.charge_signup_fee"]
    inputs["routes"] = {**inputs["routes"], "audit.tasks.record_user_created": "default"}

    ids = [error.id for error in delivery_guarantee_errors(**inputs)]

    assert ids.count("events.E009") == 1
    assert ids.count("events.E011") == 1


def test_a_consumer_task_that_acknowledges_early_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(current_app.tasks["audit.tasks.record_user_created"], "acks_late", False)

    assert "events.E010" in error_ids(**project_inputs())
