from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from analytics.models import AnalyticsEvent
from audit.models import AuditEntry
from config.celery_app import app
from crm.backends.base import CRMPermanentError, CRMTransientError
from crm.models import ContactSync
from events import draining, ledger
from events.api import get_consumer
from events.models import Delivery, DeliveryAttempt
from events.testing import run_due
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory
from users.services import user_create

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"
ANALYTICS = "analytics.track_signup"
CRM = "crm.sync_contact"


def delivery(consumer: str, event_id: object | None = None) -> Delivery:
    rows = Delivery.objects.filter(consumer=consumer)
    return rows.get(event_id=event_id) if event_id else rows.get()


def test_a_drain_runs_the_due_deliveries_and_records_each_attempt() -> None:
    event = UserCreatedFactory()

    assert draining.drain(get_consumer(AUDIT)) == 1

    done = delivery(AUDIT)
    assert (done.status, done.attempts, done.attempts_since_replay, done.lease_owner, done.due_at) == (
        Delivery.Status.DONE, 1, 1, "", None,
    )  # fmt: skip
    assert AuditEntry.objects.get().event_id == event.event_id
    [attempt] = DeliveryAttempt.objects.filter(delivery=done)
    assert (attempt.number, attempt.outcome) == (1, DeliveryAttempt.Outcome.DONE)
    assert attempt.finished_at is not None


def test_a_doorbell_rung_twice_does_the_effect_once() -> None:
    UserCreatedFactory()

    get_consumer(AUDIT).task.apply().get()
    get_consumer(AUDIT).task.apply().get()

    assert AuditEntry.objects.count() == 1
    assert delivery(AUDIT).attempts == 1


def test_a_delivery_leased_by_a_live_worker_is_left_to_it() -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(
        lease_owner="other-host:4242:abc", lease_until=timezone.now() + timedelta(seconds=60)
    )

    assert draining.drain(get_consumer(AUDIT)) == 0

    assert not AuditEntry.objects.exists()
    assert delivery(AUDIT).lease_owner == "other-host:4242:abc"


def test_a_dead_workers_lease_is_taken_over_and_its_attempt_marked_lost() -> None:
    UserCreatedFactory()
    ledger.claim(consumer=AUDIT, owner="dead:1:x", limit=1)
    Delivery.objects.filter(consumer=AUDIT).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert draining.drain(get_consumer(AUDIT)) == 1

    outcomes = list(DeliveryAttempt.objects.order_by("number").values_list("outcome", flat=True))
    assert outcomes == [DeliveryAttempt.Outcome.LOST, DeliveryAttempt.Outcome.DONE]
    assert delivery(AUDIT).attempts == 2


WELCOME = "notifications.send_welcome_email"
ADMINS = "notifications.notify_admins"


def test_a_drain_that_lost_its_leases_starts_no_further_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: three welcome e-mails owed; while the first is sent, the drain's leases lapse and another takes them
    events = [UserCreatedFactory() for _ in range(3)]
    sent: list[object] = []

    def send_and_be_overtaken(*, event: UserCreatedFactory) -> None:
        sent.append(event.event_id)
        Delivery.objects.filter(consumer=WELCOME).update(lease_until=timezone.now() - timedelta(seconds=1))
        if len(sent) == 1:
            ledger.claim(consumer=WELCOME, owner="other:1:y", limit=10)

    monkeypatch.setattr("notifications.tasks.welcome_email_send", send_and_be_overtaken)

    # when
    draining.drain(get_consumer(WELCOME))

    # then: one effect started, and the new holder's leases and attempt history are whole
    assert sent == [events[0].event_id]
    rows = Delivery.objects.filter(consumer=WELCOME)
    assert set(rows.values_list("lease_owner", "status", "attempts")) == {("other:1:y", Delivery.Status.PENDING, 2)}
    assert DeliveryAttempt.objects.filter(delivery__consumer=WELCOME).count() == 6


def test_an_effect_of_several_sends_stops_at_the_send_its_drain_no_longer_holds(
    monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    # given: three admins; the drain's lease is taken while the first admin's notice is sent
    settings.ADMIN_EMAILS = ["a@example.com", "b@example.com", "c@example.com"]
    UserCreatedFactory()
    recipients: list[str] = []

    def send(message: object, *, whom: str) -> None:
        recipients.append(message.to[0])
        Delivery.objects.filter(consumer=ADMINS).update(lease_owner="other:1:y")

    monkeypatch.setattr("notifications.services._send", send)

    # when
    draining.drain(get_consumer(ADMINS))

    # then: no send after the lease was lost, and the delivery is the new holder's to finish
    assert recipients == ["a@example.com"]
    row = delivery(ADMINS)
    assert (row.status, row.lease_owner) == (Delivery.Status.PENDING, "other:1:y")


def test_fence_outside_a_drain_does_nothing() -> None:
    draining.fence()


def test_a_retry_is_written_on_the_row_before_its_doorbell_rings(
    monkeypatch: pytest.MonkeyPatch, settings, django_capture_on_commit_callbacks
) -> None:
    # given: a first retry that is due at once (countdown 0), the case that used to race the lease
    settings.EVENTS_RETRY_FIRST = 0
    UserCreatedFactory()
    seen_at_ring: list[tuple[str, object]] = []

    def failing(*, event: object) -> None:
        raise CRMTransientError("CRM answered HTTP 503", status=503)

    def ring(*, countdown: float | None = None, force: bool = False) -> None:
        row = delivery(CRM)
        # due on the database's clock, the one the claim reads (SQLite's rounds up to its millisecond)
        seen_at_ring.append((row.lease_owner, ledger.due(consumer=CRM).filter(pk=row.pk).exists()))

    consumer = get_consumer(CRM)
    monkeypatch.setattr("crm.tasks.crm_contact_sync", failing)
    monkeypatch.setattr(consumer, "ring", ring)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        draining.drain(consumer)

    # then: when the doorbell rang the lease was already given back and the row due
    assert seen_at_ring == [("", True)]
    row = delivery(CRM)
    assert (row.status, row.attempts_since_replay) == (Delivery.Status.PENDING, 1)
    assert "HTTP 503" in row.last_error


def test_a_transient_failure_is_retried_on_the_row_until_it_succeeds(crm, settings) -> None:
    from devtools.fakes import CRMResponse

    settings.EVENTS_RETRY_FIRST = 0
    crm.answer(CRMResponse(status=500), CRMResponse(status=503))
    UserCreatedFactory()

    run_due(CRM)

    row = delivery(CRM)
    assert (row.status, row.attempts) == (Delivery.Status.DONE, 3)
    assert len(crm.requests) == 3
    assert ContactSync.objects.get().response_status == 200
    outcomes = list(DeliveryAttempt.objects.filter(delivery=row).values_list("outcome", flat=True))
    assert outcomes == ["retry", "retry", "done"]


def test_retry_after_is_honoured_on_the_row(crm) -> None:
    from devtools.fakes import CRMResponse

    crm.answer(CRMResponse(status=429, headers={"Retry-After": "120"}))
    UserCreatedFactory()

    run_due(CRM)

    row = delivery(CRM)
    assert row.status == Delivery.Status.PENDING
    assert 110 < (row.due_at - timezone.now()).total_seconds() <= 120


def test_a_permanent_error_is_a_dead_letter_at_once_with_its_reason(crm) -> None:
    from devtools.fakes import CRMResponse

    crm.answer(CRMResponse(status=400, body='{"error": "invalid"}'))
    UserCreatedFactory()

    run_due(CRM)

    row = delivery(CRM)
    assert (row.status, row.attempts, row.due_at) == (Delivery.Status.FAILED, 1, None)
    assert "HTTP 400" in row.last_error
    assert "invalid" not in row.last_error  # the CRM's body may echo the contact: never kept
    assert CRMPermanentError.__name__ in row.last_error
    assert len(crm.requests) == 1
    assert not ContactSync.objects.exists()


def test_a_bug_in_a_consumer_is_a_dead_letter_and_rolls_its_effect_back(monkeypatch: pytest.MonkeyPatch) -> None:
    UserCreatedFactory()

    def broken(*, events: list) -> None:
        for event in events:
            AnalyticsEvent.objects.create(user_id=event.user_id, event_id=event.event_id, occurred_at=timezone.now())
        raise KeyError("a bug in the consumer")

    monkeypatch.setattr("analytics.tasks.analytics_signups_track", broken)

    run_due(ANALYTICS)

    row = delivery(ANALYTICS)
    assert row.status == Delivery.Status.FAILED
    assert "KeyError: 'a bug in the consumer'" in row.last_error
    assert not AnalyticsEvent.objects.exists()


def test_transient_failures_end_as_a_dead_letter_when_the_schedule_runs_out(crm, settings) -> None:
    from devtools.fakes import CRMResponse

    settings.EVENTS_RETRY_FIRST = 0
    settings.EVENTS_RETRY_MAX_ATTEMPTS = 3
    crm.default = CRMResponse(status=503)
    UserCreatedFactory()

    run_due(CRM)

    row = delivery(CRM)
    assert (row.status, row.attempts) == (Delivery.Status.FAILED, 3)
    assert len(crm.requests) == 3


def test_a_delivery_that_keeps_killing_its_worker_becomes_a_dead_letter(settings) -> None:
    settings.EVENTS_RETRY_MAX_ATTEMPTS = 2
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(attempts_since_replay=2, attempts=2)

    run_due(AUDIT)

    row = delivery(AUDIT)
    assert row.status == Delivery.Status.FAILED
    assert "gave up" in row.last_error
    assert not AuditEntry.objects.exists()


def test_an_atomic_effect_is_rolled_back_when_its_lease_was_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    UserCreatedFactory()
    real_complete = ledger.complete

    def stolen(*, claims: list[ledger.Claim], owner: str) -> None:
        Delivery.objects.filter(pk__in=[claim.delivery_id for claim in claims]).update(lease_owner="thief:1:x")
        real_complete(claims=claims, owner=owner)

    monkeypatch.setattr(ledger, "complete", stolen)

    draining.drain(get_consumer(AUDIT))

    assert not AuditEntry.objects.exists()
    assert delivery(AUDIT).status == Delivery.Status.PENDING


def test_a_database_error_in_the_claim_retries_the_doorbell(monkeypatch: pytest.MonkeyPatch) -> None:
    UserCreatedFactory()
    real_claim = ledger.claim
    calls: list[str] = []

    def down_once(**kwargs: object) -> list[ledger.Claim]:
        calls.append("claim")
        if len(calls) == 1:
            raise OperationalError("the database is gone")
        return real_claim(**kwargs)

    monkeypatch.setattr(ledger, "claim", down_once)

    get_consumer(AUDIT).task.apply()  # eager: Celery's retry runs the doorbell again at once

    assert calls == ["claim", "claim"]
    assert delivery(AUDIT).status == Delivery.Status.DONE


def test_a_full_batch_rings_the_next_one(settings) -> None:
    for _ in range(3):
        UserCreatedFactory()
    consumer = get_consumer(AUDIT)
    settings_batch = consumer.batch_size
    consumer.batch_size = 2
    try:
        assert draining.drain(consumer) == 2
    finally:
        consumer.batch_size = settings_batch

    assert len(drain_queue(app, AUDIT)) == 1
    assert Delivery.objects.filter(consumer=AUDIT, status=Delivery.Status.PENDING).count() == 1


def test_a_drain_out_of_time_gives_the_rest_back(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.EVENTS_TASK_TIME_LIMIT = 0
    for _ in range(2):
        UserCreatedFactory()

    assert draining.drain(get_consumer(CRM)) == 0

    assert set(Delivery.objects.filter(consumer=CRM).values_list("lease_owner", "attempts")) == {("", 0)}
    assert not DeliveryAttempt.objects.exists()
    assert len(drain_queue(app, CRM)) == 1


@pytest.mark.django_db(transaction=True)
def test_eager_mode_through_override_settings_runs_every_consumer_in_process(password: str) -> None:
    with override_settings(CELERY_TASK_ALWAYS_EAGER=True):
        user = user_create(email="eager@example.com", password=password)

    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DONE}
    assert AuditEntry.objects.get().target_user_id == user.pk


def test_one_bad_event_in_a_bulk_batch_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: an audit batch of three, whose bulk insert chokes on the second event
    from audit.services import audit_entries_record_user_created

    events = [UserCreatedFactory() for _ in range(3)]
    bad = events[1].event_id

    def choking(*, events: list) -> None:
        if any(event.event_id == bad for event in events):
            raise ValueError("cannot audit this one")
        audit_entries_record_user_created(events=events)

    monkeypatch.setattr("audit.tasks.audit_entries_record_user_created", choking)

    # when
    draining.drain(get_consumer(AUDIT))

    # then: the two others are recorded and done, in the same commit as the bad one's dead letter
    assert sorted(AuditEntry.objects.values_list("event_id", flat=True)) == sorted(
        [events[0].event_id, events[2].event_id]
    )
    statuses = dict(Delivery.objects.filter(consumer=AUDIT).values_list("event_id", "status"))
    assert [statuses[event.event_id] for event in events] == ["done", "failed", "done"]


def test_a_drain_of_backlog_rows_yields_mid_batch_to_live_work_that_came_in(crm, monkeypatch) -> None:
    # given: five backlog CRM deliveries (a backfill's) claimed as one batch
    for _ in range(5):
        UserCreatedFactory()
    Delivery.objects.filter(consumer="crm.sync_contact").update(backlog=True)
    consumer = get_consumer("crm.sync_contact")
    monkeypatch.setattr(draining, "LIVE_LOOK_EVERY", 0)
    claimed = ledger.claim(consumer=consumer.name, owner="host:1:a", limit=5)
    assert [claim.backlog for claim in claimed] == [True] * 5
    sync = consumer.handler
    arrived: list[object] = []

    def first_then_a_signup(event: object) -> None:
        sync(event)
        if not arrived:
            arrived.append(UserCreatedFactory())  # a new user's live delivery, while the batch runs

    monkeypatch.setattr(consumer, "handler", first_then_a_signup)

    # when
    ran = draining._drain_one_by_one(consumer, claimed, "host:1:a")

    # then: one backlog effect ran; the other four went back unstarted; the next claim takes the live one first
    assert ran == 1 and len(crm.requests) == 1
    given_back = Delivery.objects.filter(pk__in=[claim.delivery_id for claim in claimed[1:]])
    assert {(row.attempts, row.lease_owner) for row in given_back} == {(0, "")}
    [first, *_rest] = ledger.claim(consumer=consumer.name, owner="host:1:b", limit=5)
    assert not first.backlog
