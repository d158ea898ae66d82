from __future__ import annotations

import logging

import pytest
from celery.result import AsyncResult
from django.db import transaction

from config.celery_app import app
from events.api import publish
from events.doorbells import doorbells
from events.models import Delivery, Event
from events.testing import capture_events
from tests.broker import drain_queue
from tests.factories import UserFactory
from users.events import UserCreated, UserCreationSource
from users.signals import user_created

pytestmark = pytest.mark.django_db


def new_event() -> UserCreated:
    return UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE)


def test_publishing_stores_the_event_and_one_pending_due_delivery_per_consumer(consumer_names: list[str]) -> None:
    event = new_event()

    publish(signal=user_created, event=event)

    assert UserCreated.from_dict(Event.objects.get(pk=event.event_id).payload) == event
    deliveries = Delivery.objects.filter(event_id=event.event_id)
    assert sorted(delivery.consumer for delivery in deliveries) == consumer_names
    assert {(delivery.status, delivery.attempts, delivery.lease_owner) for delivery in deliveries} == {
        (Delivery.Status.PENDING, 0, "")
    }
    assert all(delivery.due_at is not None for delivery in deliveries)


def test_rolled_back_publish_leaves_no_event_and_no_delivery() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(signal=user_created, event=new_event())
        raise RuntimeError("rollback")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_dispatch_on_commit_rings_each_consumer_once_with_no_arguments(
    django_capture_on_commit_callbacks, consumer_names: list[str]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        publish(signal=user_created, event=new_event())

    for name in consumer_names:
        queued = drain_queue(app, name)
        assert [(task.args, task.kwargs) for task in queued] == [([], {})], name


def test_nothing_is_rung_before_commit(consumer_names: list[str]) -> None:
    publish(signal=user_created, event=new_event())

    assert all(drain_queue(app, name) == [] for name in consumer_names)


def test_a_broker_error_at_dispatch_is_logged_and_leaves_the_deliveries_pending(
    django_capture_on_commit_callbacks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(app, "producer_or_acquire", refuse)
    event = new_event()

    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        publish(signal=user_created, event=event)

    assert "the sweep will ring its consumers" in caplog.text
    assert not Delivery.objects.exclude(status=Delivery.Status.PENDING).exists()


def test_apply_async_inside_doorbells_keeps_celerys_contract(consumer_names: list[str]) -> None:
    from events.api import get_consumer

    task = get_consumer(consumer_names[0]).task
    with doorbells():
        result = task.apply_async()

    assert isinstance(result, AsyncResult)
    assert len(drain_queue(app, consumer_names[0])) == 1


def test_capture_events_sees_what_a_block_publishes() -> None:
    with capture_events() as captured:
        event = new_event()
        publish(signal=user_created, event=event)

    assert captured == [event]


def test_a_doorbell_already_queued_is_not_rung_again_until_its_drain_starts(consumer_names: list[str]) -> None:
    from events.api import get_consumer
    from events.doorbells import doorbell_answered

    consumer = get_consumer(consumer_names[0])

    consumer.ring()
    consumer.ring()
    assert len(drain_queue(app, consumer.name)) == 1

    doorbell_answered(consumer.name)  # a drain starts: rows committed from now on need a new doorbell
    consumer.ring()
    consumer.ring(force=True)
    assert len(drain_queue(app, consumer.name)) == 2


def test_many_signups_queue_one_doorbell_per_consumer(
    django_capture_on_commit_callbacks, consumer_names: list[str]
) -> None:
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            publish(signal=user_created, event=new_event())

    assert {name: len(drain_queue(app, name)) for name in consumer_names} == dict.fromkeys(consumer_names, 1)
