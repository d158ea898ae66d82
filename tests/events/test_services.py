from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from config.celery_app import app
from events.models import Delivery, Event
from events.services import (
    consumers_matching,
    deliveries_for_replay,
    delivery_claim,
    delivery_complete,
    delivery_fail,
    delivery_release,
    delivery_replay,
    delivery_sweep,
    event_load,
    event_publish,
    events_missing_deliveries,
)
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory, UserFactory
from users.events import UserCreated, UserCreationSource
from users.signals import user_created

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"
CONSUMERS = {
    "notifications.send_welcome_email",
    "notifications.notify_admins",
    "audit.record_user_created",
    "analytics.track_signup",
    "crm.sync_contact",
}


def test_publishing_stores_the_event_and_one_pending_delivery_per_consumer() -> None:
    event = UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE)

    event_publish(signal=user_created, event=event)

    assert event_load(event_id=event.event_id, event_class=UserCreated) == event
    deliveries = Delivery.objects.filter(event_id=event.event_id)
    assert {delivery.consumer for delivery in deliveries} == CONSUMERS
    assert {delivery.status for delivery in deliveries} == {Delivery.Status.PENDING}


def test_rolled_back_publish_leaves_no_event_and_no_delivery() -> None:
    event = UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE)

    with pytest.raises(RuntimeError), transaction.atomic():
        event_publish(signal=user_created, event=event)
        raise RuntimeError("rollback")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_dispatch_on_commit_enqueues_every_consumer_once(django_capture_on_commit_callbacks) -> None:
    event = UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE)

    with django_capture_on_commit_callbacks(execute=True):
        event_publish(signal=user_created, event=event)

    for queue in CONSUMERS:
        assert [task.kwargs for task in drain_queue(app, queue)] == [{"event_id": str(event.event_id)}], queue


def test_claim_leases_a_pending_delivery_to_one_worker_at_a_time() -> None:
    event = UserCreatedFactory()

    first = delivery_claim(consumer=AUDIT, event_id=event.event_id)
    second = delivery_claim(consumer=AUDIT, event_id=event.event_id)

    assert first is not None
    leased = Delivery.objects.get(event_id=event.event_id, consumer=AUDIT)
    assert (leased.attempts, leased.lease_owner) == (1, first.lease_owner)
    assert leased.lease_until > timezone.now()
    assert leased.due_at > leased.lease_until
    assert second is None


def test_claim_takes_over_an_expired_lease() -> None:
    event = UserCreatedFactory()
    delivery_claim(consumer=AUDIT, event_id=event.event_id)
    Delivery.objects.filter(consumer=AUDIT).update(lease_until=timezone.now() - timedelta(seconds=1))

    again = delivery_claim(consumer=AUDIT, event_id=event.event_id)

    assert again is not None
    assert Delivery.objects.get(consumer=AUDIT).attempts == 2


@pytest.mark.parametrize("status", [Delivery.Status.DONE, Delivery.Status.FAILED])
def test_claim_skips_a_delivery_done_or_dead_lettered(status: str) -> None:
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(status=status)

    assert delivery_claim(consumer=AUDIT, event_id=event.event_id) is None
    assert Delivery.objects.get(consumer=AUDIT).attempts == 0


def test_claim_of_an_unknown_delivery_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert delivery_claim(consumer=AUDIT, event_id="3f0b8d1e-2f7c-4f56-9b0a-8f6c1d2e3a4b") is None
    assert "No delivery" in caplog.text


def test_claim_dead_letters_a_delivery_out_of_attempts(settings) -> None:
    settings.EVENTS_MAX_ATTEMPTS = 2
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(attempts=2)

    assert delivery_claim(consumer=AUDIT, event_id=event.event_id) is None

    delivery = Delivery.objects.get(consumer=AUDIT)
    assert delivery.status == Delivery.Status.FAILED
    assert "gave up after 2 attempts" in delivery.last_error


def test_complete_release_and_fail_record_the_outcome() -> None:
    event = UserCreatedFactory()
    claimed = delivery_claim(consumer=AUDIT, event_id=event.event_id)
    assert claimed is not None

    delivery_release(delivery=claimed, retry_in=30, error=ValueError("smtp down"))
    released = Delivery.objects.get(consumer=AUDIT)
    assert (released.status, released.lease_until) == (Delivery.Status.PENDING, None)
    assert released.due_at > timezone.now() + timedelta(seconds=30)
    assert "ValueError: smtp down" in released.last_error

    delivery_complete(delivery=claimed)
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.DONE

    delivery_fail(delivery=claimed, error="boom")
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.FAILED


def test_sweep_enqueues_overdue_pending_deliveries_only() -> None:
    # given: one overdue pending delivery, the same consumer done for another event, one not yet due
    overdue, done, fresh = UserCreatedFactory(), UserCreatedFactory(), UserCreatedFactory()
    past = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(event_id__in=[overdue.event_id, done.event_id]).update(due_at=past)
    Delivery.objects.filter(event_id=done.event_id).update(status=Delivery.Status.DONE)

    # when
    enqueued = delivery_sweep()

    # then
    assert enqueued == len(CONSUMERS)
    assert [task.kwargs for task in drain_queue(app, AUDIT)] == [{"event_id": str(overdue.event_id)}]
    swept = Delivery.objects.get(event_id=overdue.event_id, consumer=AUDIT)
    assert swept.sweeps == 1 and swept.due_at > timezone.now()
    assert Delivery.objects.get(event_id=fresh.event_id, consumer=AUDIT).sweeps == 0


def test_sweep_backs_off_a_delivery_it_keeps_enqueuing(settings) -> None:
    settings.EVENTS_REDELIVERY_AFTER = 10
    UserCreatedFactory()
    now = timezone.now()
    Delivery.objects.update(due_at=now, sweeps=3)

    delivery_sweep(now=now)

    assert Delivery.objects.filter(consumer=AUDIT).get().due_at == now + timedelta(seconds=10 * 2**3)


def test_sweep_works_through_more_than_one_batch() -> None:
    for _ in range(3):
        UserCreatedFactory()
    Delivery.objects.update(due_at=timezone.now() - timedelta(seconds=1))

    assert delivery_sweep(batch_size=4) == 3 * len(CONSUMERS)
    assert len(drain_queue(app, AUDIT)) == 3


def test_sweep_dead_letters_a_delivery_whose_consumer_is_gone() -> None:
    event = UserCreatedFactory()
    Delivery.objects.filter(event_id=event.event_id, consumer=AUDIT).update(
        consumer="removed.consumer", due_at=timezone.now()
    )

    delivery_sweep()

    gone = Delivery.objects.get(consumer="removed.consumer")
    assert gone.status == Delivery.Status.FAILED
    assert "no receiver" in gone.last_error


def test_consumers_match_by_name_or_app_label() -> None:
    assert consumers_matching(["crm.sync_contact"]) == ["crm.sync_contact"]
    assert consumers_matching(["notifications"]) == ["notifications.notify_admins", "notifications.send_welcome_email"]
    with pytest.raises(ValueError, match="Known consumers"):
        consumers_matching(["nope"])


def test_replaying_a_done_delivery_does_not_repeat_the_effect() -> None:
    from audit.tasks import record_user_created

    event = UserCreatedFactory()
    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()
    done = Delivery.objects.get(event_id=event.event_id, consumer=AUDIT)
    assert done.status == Delivery.Status.DONE

    delivery_replay(deliveries=[done])
    [queued] = drain_queue(app, AUDIT)
    record_user_created.apply(kwargs=queued.kwargs).get()

    assert AuditEntry.objects.count() == 1
    assert Delivery.objects.get(pk=done.pk).status == Delivery.Status.DONE


def test_replay_resets_dead_letters_and_enqueues_them() -> None:
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(status=Delivery.Status.FAILED, attempts=9, last_error="boom")

    failed = list(deliveries_for_replay(consumers=[AUDIT], failed=True))
    delivery_replay(deliveries=failed)

    replayed = Delivery.objects.get(consumer=AUDIT)
    assert (replayed.status, replayed.attempts) == (Delivery.Status.PENDING, 0)
    assert [task.kwargs for task in drain_queue(app, AUDIT)] == [{"event_id": str(event.event_id)}]


def test_backfill_creates_the_deliveries_a_new_consumer_is_owed() -> None:
    old = UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).delete()

    missing = events_missing_deliveries(consumers=[AUDIT], since=old.occurred_at - timedelta(days=1))
    delivery_replay(deliveries=[], missing=missing)

    assert [(event.pk, consumer) for event, consumer in missing] == [(old.event_id, AUDIT)]
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.PENDING
    assert [task.kwargs for task in drain_queue(app, AUDIT)] == [{"event_id": str(old.event_id)}]


def test_sweep_leaves_a_swept_delivery_alone_while_its_queue_has_a_backlog() -> None:
    # given: two overdue deliveries to the audit consumer, one never enqueued, one already swept,
    # and a message still waiting in the audit queue
    never_enqueued, swept_before = UserCreatedFactory(), UserCreatedFactory()
    Delivery.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    Delivery.objects.filter(event_id=swept_before.event_id).update(sweeps=1)
    from audit.tasks import record_user_created

    record_user_created.delay(event_id=str(swept_before.event_id))

    # when
    delivery_sweep()

    # then: only the delivery never enqueued joins the audit queue
    queued = [task.kwargs["event_id"] for task in drain_queue(app, AUDIT)]
    assert sorted(queued) == sorted([str(swept_before.event_id), str(never_enqueued.event_id)])
    assert Delivery.objects.get(event_id=swept_before.event_id, consumer=AUDIT).sweeps == 1
    # and consumers without a backlog get both
    assert len(drain_queue(app, "analytics.track_signup")) == 2
