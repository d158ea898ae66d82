from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import CharField, DateTimeField, ExpressionWrapper, Value
from django.db.models.functions import Concat, Now
from django.utils import timezone

from events import ledger
from events.models import Delivery, DeliveryAttempt
from events.replay import deliveries_make_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"


def test_claims_lease_up_to_the_limit_oldest_first_and_never_twice() -> None:
    events = [UserCreatedFactory() for _ in range(3)]
    Delivery.objects.filter(consumer=AUDIT, event_id=events[2].event_id).update(
        due_at=timezone.now() - timedelta(minutes=5)
    )

    first = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=2)
    second = ledger.claim(consumer=AUDIT, owner="b:1:y", limit=2)

    assert [held.event_id for held in first] == [events[2].event_id, events[0].event_id]
    assert [held.event_id for held in second] == [events[1].event_id]
    assert ledger.claim(consumer=AUDIT, owner="c:1:z", limit=2) == []


@pytest.mark.parametrize("status", [Delivery.Status.DONE, Delivery.Status.FAILED])
def test_done_and_dead_deliveries_are_never_claimed(status: str) -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(status=status)

    assert ledger.claim(consumer=AUDIT, owner="a:1:x", limit=10) == []


def test_a_delivery_due_later_is_not_claimed_yet() -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(due_at=timezone.now() + timedelta(seconds=30))

    assert ledger.claim(consumer=AUDIT, owner="a:1:x", limit=10) == []


@pytest.mark.parametrize("outcome", ["complete", "retry_later", "fail"])
def test_only_the_lease_holder_records_an_outcome(outcome: str) -> None:
    UserCreatedFactory()
    [attempt] = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)
    Delivery.objects.filter(consumer=AUDIT).update(lease_owner="b:1:y")
    record = {
        "complete": lambda: ledger.complete(claims=[attempt], owner="a:1:x"),
        "retry_later": lambda: ledger.retry_later(claim=attempt, owner="a:1:x", delay=1, error="x"),
        "fail": lambda: ledger.fail(claim=attempt, owner="a:1:x", error="x"),
    }[outcome]

    with pytest.raises(ledger.LeaseLost):
        record()

    row = Delivery.objects.get(consumer=AUDIT)
    assert (row.status, row.lease_owner) == (Delivery.Status.PENDING, "b:1:y")


def test_renewing_extends_only_the_owners_leases() -> None:
    UserCreatedFactory()
    UserCreatedFactory()
    ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)
    ledger.claim(consumer=AUDIT, owner="b:1:y", limit=1)
    Delivery.objects.filter(consumer=AUDIT).update(lease_until=timezone.now())

    assert ledger.renew(owners=["a:1:x"]) == 1

    renewed = Delivery.objects.get(consumer=AUDIT, lease_owner="a:1:x")
    assert renewed.lease_until > timezone.now() + timedelta(seconds=10)
    assert Delivery.objects.get(consumer=AUDIT, lease_owner="b:1:y").lease_until <= timezone.now()


def test_a_running_drain_keeps_its_leases_alive(settings) -> None:
    import time

    from events.leases import LeaseRenewer

    settings.EVENTS_LEASE_RENEW_EVERY = 0.05
    renewer = LeaseRenewer()
    renewed: list[list[str]] = []
    original = ledger.renew

    def spy(*, owners: list[str]) -> int:
        renewed.append(owners)
        return 0

    ledger.renew = spy
    try:
        with renewer.held("a:1:x"):
            time.sleep(0.3)
        count = len(renewed)
        time.sleep(0.2)
    finally:
        ledger.renew = original

    assert count >= 2
    assert all(owners == ["a:1:x"] for owners in renewed)
    assert len(renewed) == count  # nothing renewed once the drain is over


def test_a_claim_counts_and_records_each_attempt_before_any_effect() -> None:
    UserCreatedFactory()
    UserCreatedFactory()

    attempts = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=5)

    assert [(attempt.number, attempt.attempts_since_replay) for attempt in attempts] == [(1, 1), (1, 1)]
    rows = DeliveryAttempt.objects.filter(delivery__consumer=AUDIT)
    assert sorted(rows.values_list("outcome", "worker")) == [("running", "a:1"), ("running", "a:1")]


def test_releasing_an_unstarted_attempt_leaves_the_delivery_as_it_was() -> None:
    UserCreatedFactory()
    attempts = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=5)

    ledger.release(claims=attempts, owner="a:1:x")

    row = Delivery.objects.get(consumer=AUDIT)
    assert (row.lease_owner, row.attempts, row.attempts_since_replay) == ("", 0, 0)
    assert not DeliveryAttempt.objects.exists()


def test_releasing_leaves_a_delivery_another_drain_took_and_its_attempt_history_alone() -> None:
    # given: a drain's lease lapsed and another drain took the delivery (marking the first attempt lost)
    UserCreatedFactory()
    [stale] = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)
    Delivery.objects.filter(consumer=AUDIT).update(lease_until=timezone.now() - timedelta(seconds=1))
    ledger.claim(consumer=AUDIT, owner="b:1:y", limit=1)

    # when: the first drain gives back what it thinks it still holds
    ledger.release(claims=[stale], owner="a:1:x")

    # then: the new holder's lease and both attempts stay
    row = Delivery.objects.get(consumer=AUDIT)
    assert (row.lease_owner, row.attempts) == ("b:1:y", 2)
    assert list(DeliveryAttempt.objects.order_by("number").values_list("number", "outcome")) == [
        (1, DeliveryAttempt.Outcome.LOST),
        (2, DeliveryAttempt.Outcome.RUNNING),
    ]


def test_holding_renews_a_live_lease_and_refuses_a_lapsed_or_taken_one() -> None:
    UserCreatedFactory()
    [claim] = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)
    rows = Delivery.objects.filter(consumer=AUDIT)
    rows.update(lease_until=timezone.now() + timedelta(seconds=1))

    assert ledger.hold(claim=claim, owner="a:1:x")
    assert rows.get().lease_until > timezone.now() + timedelta(seconds=10)
    assert not ledger.hold(claim=claim, owner="b:1:y")

    # a lease past its time is not held, even by its owner and with nobody else holding it yet
    rows.update(lease_until=timezone.now() - timedelta(milliseconds=10))
    assert not ledger.hold(claim=claim, owner="a:1:x")
    assert rows.get().lease_until < timezone.now()


def test_pruning_deletes_only_done_deliveries_past_the_retention(settings) -> None:
    from events.testing import run_due

    settings.EVENTS_RETENTION_DAYS = 30
    old, recent, failed = UserCreatedFactory(), UserCreatedFactory(), UserCreatedFactory()
    run_due(AUDIT)
    Delivery.objects.filter(consumer=AUDIT, event_id=failed.event_id).update(status=Delivery.Status.FAILED)
    Delivery.objects.filter(consumer=AUDIT, event_id__in=[old.event_id, failed.event_id]).update(
        completed_at=timezone.now() - timedelta(days=31)
    )

    assert ledger.prune(chunk=1) == 1

    assert not Delivery.objects.filter(consumer=AUDIT, event_id=old.event_id).exists()
    assert not DeliveryAttempt.objects.filter(delivery__event_id=old.event_id).exists()
    assert Delivery.objects.filter(consumer=AUDIT, event_id=recent.event_id).exists()
    assert Delivery.objects.filter(consumer=AUDIT, event_id=failed.event_id).exists()
    assert Delivery.objects.filter(event_id=old.event_id).exclude(consumer=AUDIT).exists()  # still pending


def test_a_delivery_given_back_due_now_is_due_in_the_same_instant() -> None:
    # given: a due time written on the database's clock, "now + 0 s", as a retry with no wait writes it
    UserCreatedFactory()
    written = ExpressionWrapper(ledger.DatabaseNow() + timedelta(seconds=0), output_field=DateTimeField())

    # when: compared with the database's clock in the same statement (the same instant on SQLite)
    due_now = Delivery.objects.alias(written=written).filter(written__lte=ledger.DatabaseNow())

    # then: it is due (SQLite compares text: a millisecond clock sorted it after "now")
    assert due_now.count() == Delivery.objects.count()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL compares timestamps, not text")
def test_a_delivery_made_due_now_by_python_is_due_in_the_same_millisecond() -> None:
    # given: a time as Django writes it from Python, microseconds into the database clock's millisecond
    UserCreatedFactory()
    written = Concat(Now(), Value("512"), output_field=CharField())

    # then: it is due by the database's clock in that same instant
    assert (
        Delivery.objects.alias(written=written).filter(written__lte=ledger.DatabaseNow()).count()
        == Delivery.objects.count()
    )


def test_live_deliveries_are_claimed_before_the_backlog_a_replay_made_due() -> None:
    # given: two old events made due by a backfill, then a new signup (due later than them)
    old = [UserCreatedFactory() for _ in range(2)]
    deliveries_make_due(deliveries=list(Delivery.objects.filter(consumer=AUDIT)))
    Delivery.objects.filter(consumer=AUDIT).update(due_at=timezone.now() - timedelta(hours=1))
    new = UserCreatedFactory()

    # when
    first = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)
    rest = ledger.claim(consumer=AUDIT, owner="b:1:y", limit=5)

    # then: the live one first, then the backlog in due order
    assert [claim.event_id for claim in first] == [new.event_id]
    assert {claim.event_id for claim in rest} == {event.event_id for event in old}


def test_a_retry_keeps_its_lane() -> None:
    UserCreatedFactory()
    deliveries_make_due(deliveries=list(Delivery.objects.filter(consumer=AUDIT)))
    [claim] = ledger.claim(consumer=AUDIT, owner="a:1:x", limit=1)

    ledger.retry_later(claim=claim, owner="a:1:x", delay=0, error="boom")

    assert Delivery.objects.get(consumer=AUDIT).backlog is True
