from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import AnalyticsEvent
from analytics.tasks import track_signup
from audit.models import AuditEntry
from audit.tasks import record_user_created
from config.celery_app import app
from crm.tasks import sync_crm_contact
from events.models import Delivery
from events.publishing import publishing_batch
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"


def test_redelivered_message_records_one_audit_entry() -> None:
    event = UserCreatedFactory()

    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()
    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert AuditEntry.objects.count() == 1
    delivery = Delivery.objects.get(event_id=event.event_id, consumer=AUDIT)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DONE, 1)
    assert delivery.completed_at is not None


def test_a_delivery_leased_by_another_worker_is_left_to_it() -> None:
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(
        lease_owner="other-host:4242", lease_until=timezone.now() + timedelta(seconds=60)
    )

    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert not AuditEntry.objects.exists()
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.PENDING


def test_an_unexpected_error_makes_a_dead_letter_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    event = UserCreatedFactory()

    def broken(**kwargs: object) -> None:
        raise KeyError("a bug in the consumer")

    monkeypatch.setattr("analytics.tasks.analytics_signup_track", broken)

    result = track_signup.apply(kwargs={"event_id": str(event.event_id)})

    assert result.failed()
    delivery = Delivery.objects.get(consumer="analytics.track_signup")
    assert delivery.status == Delivery.Status.FAILED
    assert "KeyError: 'a bug in the consumer'" in delivery.last_error
    assert not AnalyticsEvent.objects.exists()


def test_a_malformed_message_is_dropped_without_looping(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        result = record_user_created.apply(kwargs={"event_id": "not-a-uuid"})

    assert result.successful()
    assert "malformed" in caplog.text


def test_a_retry_releases_the_lease_until_the_retry_is_due(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm.backends.base import CRMTransientError

    event = UserCreatedFactory()
    calls: list[int] = []

    def flaky(**kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            delivery = Delivery.objects.get(consumer="crm.sync_contact")
            assert delivery.lease_until is not None  # claimed while it runs
            raise CRMTransientError("CRM answered HTTP 503", status=503, retry_after=5)

    monkeypatch.setattr("crm.tasks.crm_contact_sync", flaky)

    sync_crm_contact.apply(kwargs={"event_id": str(event.event_id)}).get()

    delivery = Delivery.objects.get(consumer="crm.sync_contact")
    assert len(calls) == 2
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DONE, 2)
    assert "HTTP 503" in delivery.last_error


def test_enqueues_in_a_batch_reach_their_queues() -> None:
    with publishing_batch():
        record_user_created.delay(event_id="00000000-0000-0000-0000-000000000001")
        track_signup.delay(event_id="00000000-0000-0000-0000-000000000002")

    assert [task.kwargs for task in drain_queue(app, AUDIT)] == [{"event_id": "00000000-0000-0000-0000-000000000001"}]
    assert len(drain_queue(app, "analytics.track_signup")) == 1


def test_after_a_failed_enqueue_the_rest_of_the_dispatch_is_left_to_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import Task

    attempts: list[str] = []

    def broker_down(self: Task, *args: object, **kwargs: object) -> None:
        attempts.append(self.name)
        raise ConnectionError("broker down")

    monkeypatch.setattr(Task, "apply_async", broker_down)

    with publishing_batch() as batch:
        assert record_user_created.delay(event_id="00000000-0000-0000-0000-000000000001") is None
        assert track_signup.delay(event_id="00000000-0000-0000-0000-000000000002") is None

    assert attempts == ["audit.tasks.record_user_created"]
    assert isinstance(batch.failed, ConnectionError)
