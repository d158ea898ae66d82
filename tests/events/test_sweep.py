from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery_app import app
from events.models import Delivery, SweepRun
from events.sweep import sweep
from events.tasks import sweep_deliveries
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"


def allow_a_sweep() -> None:
    SweepRun.objects.update(started_at=timezone.now() - timedelta(hours=1))


def test_a_backlog_of_any_size_costs_one_doorbell_per_consumer(consumer_names: list[str]) -> None:
    for _ in range(30):
        UserCreatedFactory()

    rung = sweep()

    assert sorted(rung) == consumer_names
    assert {name: len(drain_queue(app, name)) for name in consumer_names} == dict.fromkeys(consumer_names, 1)


def test_consumers_with_nothing_due_are_not_rung(consumer_names: list[str]) -> None:
    UserCreatedFactory()
    Delivery.objects.exclude(consumer=AUDIT).update(status=Delivery.Status.DONE)
    Delivery.objects.filter(consumer=AUDIT).update(due_at=timezone.now() + timedelta(minutes=1))

    assert sweep() == []


def test_a_live_lease_is_not_due_and_an_expired_one_is() -> None:
    UserCreatedFactory()
    Delivery.objects.exclude(consumer=AUDIT).update(status=Delivery.Status.DONE)
    Delivery.objects.filter(consumer=AUDIT).update(
        lease_owner="w:1:x", lease_until=timezone.now() + timedelta(seconds=9)
    )

    assert sweep() == []

    allow_a_sweep()
    Delivery.objects.filter(consumer=AUDIT).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert sweep() == [AUDIT]


def test_a_second_scheduler_sweeping_at_once_rings_nothing_more() -> None:
    UserCreatedFactory()

    first, second = sweep(), sweep()

    assert first and second == []
    assert len(drain_queue(app, AUDIT)) == 1


def test_the_sweep_runs_on_a_queue_of_its_own(settings, consumer_names: list[str]) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["events.sweep_deliveries"]

    assert entry["schedule"] == settings.EVENTS_SWEEP_INTERVAL
    route = app.amqp.router.route({}, sweep_deliveries.name)
    assert route["queue"].name == settings.EVENTS_SWEEP_QUEUE
    assert settings.EVENTS_SWEEP_QUEUE not in consumer_names
