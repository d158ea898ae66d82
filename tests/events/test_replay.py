from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from events import ledger
from events.models import Delivery, DeliveryAttempt, Event
from events.registry import get_consumer
from events.replay import deliveries_make_due
from events.testing import run_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"


def test_replaying_a_dead_letter_makes_it_due_with_a_fresh_schedule_and_keeps_its_history() -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(
        status=Delivery.Status.FAILED, attempts=7, attempts_since_replay=7, due_at=None, last_error="boom"
    )
    row = Delivery.objects.get(consumer=AUDIT)

    assert deliveries_make_due(deliveries=[row]).count == 1

    row.refresh_from_db()
    assert (row.status, row.attempts, row.attempts_since_replay) == (Delivery.Status.PENDING, 7, 0)
    assert ledger.due(consumer=AUDIT).filter(pk=row.pk).exists()  # on the database's clock
    run_due(AUDIT)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.DONE, 8)
    assert DeliveryAttempt.objects.get(delivery=row).number == 8


def test_a_replay_never_takes_the_lease_of_a_running_delivery() -> None:
    # given: a worker holds the delivery and has started its attempt
    UserCreatedFactory()
    [attempt] = ledger.claim(consumer=AUDIT, owner="w:1:x", limit=1)
    lease_until = Delivery.objects.get(consumer=AUDIT).lease_until

    # when: an operator replays it
    deliveries_make_due(deliveries=[Delivery.objects.get(consumer=AUDIT)])

    # then: the lease is untouched, no other worker can take it, and the holder's outcome stands
    row = Delivery.objects.get(consumer=AUDIT)
    assert (row.lease_owner, row.lease_until) == ("w:1:x", lease_until)
    assert ledger.claim(consumer=AUDIT, owner="v:2:y", limit=1) == []
    ledger.complete(claims=[attempt], owner="w:1:x")
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.DONE


def test_replaying_a_done_delivery_repeats_no_effect() -> None:
    UserCreatedFactory()
    run_due(AUDIT)

    deliveries_make_due(deliveries=list(Delivery.objects.filter(consumer=AUDIT)))
    run_due(AUDIT)

    assert AuditEntry.objects.count() == 1
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.DONE
    assert Delivery.objects.get(consumer=AUDIT).due_at is None
    assert timezone.now() - Delivery.objects.get(consumer=AUDIT).completed_at < timedelta(minutes=1)


def test_a_replay_and_a_backfill_put_their_deliveries_in_the_backlog_lane() -> None:
    # given: a done delivery, and an event whose audit delivery is missing (a consumer added later)
    replayed, backfilled = UserCreatedFactory(), UserCreatedFactory()
    run_due(AUDIT)
    Delivery.objects.filter(consumer=AUDIT, event_id=backfilled.event_id).delete()
    missing = [(Event.objects.get(pk=backfilled.event_id), get_consumer(AUDIT))]

    # when
    deliveries_make_due(deliveries=list(Delivery.objects.filter(consumer=AUDIT)), missing=missing)

    # then: both due in the backlog lane; a new event's delivery is live
    rows = Delivery.objects.filter(consumer=AUDIT)
    assert {(row.event_id, row.status, row.backlog) for row in rows} == {
        (replayed.event_id, Delivery.Status.PENDING, True),
        (backfilled.event_id, Delivery.Status.PENDING, True),
    }
    live = UserCreatedFactory()
    assert Delivery.objects.get(consumer=AUDIT, event_id=live.event_id).backlog is False
