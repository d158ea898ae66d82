"""Deadlines: a delivery past its consumer's ends expired (not run, not a failure), visible and replayable."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from events import draining, ledger, tallies
from events.checks import delivery_guarantee_errors
from events.deadlines import describe
from events.models import Delivery, DeliveryAttempt
from events.registry import get_consumer
from events.replay import deliveries_make_due
from events.testing import run_due
from tests.factories import UserCreatedFactory
from users.models import User

pytestmark = pytest.mark.django_db

ADMINS = "notifications.notify_admins"
WELCOME = "notifications.send_welcome_email"
AUDIT = "audit.record_user_created"
REASON = "expired: not done within its deadline (1 day)"


def days_ago(days: float) -> datetime:
    return timezone.now() - timedelta(days=days)


def test_publishing_sets_each_delivery_s_deadline_from_its_event(settings) -> None:
    # given: an event that occurred two hours ago
    event = UserCreatedFactory(occurred_at=timezone.now() - timedelta(hours=2))

    rows = {row.consumer: row for row in Delivery.objects.filter(event_id=event.event_id)}

    # then: the mails expire their deadline after the event; the audit, analytics and CRM never do
    assert rows[ADMINS].expires_at == event.occurred_at + timedelta(days=1)
    assert rows[WELCOME].expires_at == event.occurred_at + timedelta(seconds=settings.EMAIL_CONFIRMATION_TIMEOUT)
    assert {name: row.expires_at for name, row in rows.items() if name not in (ADMINS, WELCOME)} == {
        name: None for name in rows if name not in (ADMINS, WELCOME)
    }
    assert not any(row.backlog for row in rows.values())


def test_a_delivery_past_its_deadline_expires_in_the_claim_without_an_attempt_or_an_effect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a signup two days old, its admin notice still owed (deadline: a day)
    event = UserCreatedFactory(occurred_at=days_ago(2))
    before = tallies.read().get((tallies.DELIVERIES, ADMINS, Delivery.Status.EXPIRED), 0)

    # when
    with caplog.at_level(logging.INFO, logger="events.ledger"):
        batch = ledger.claim(consumer=ADMINS, owner="a:1:x", limit=10)

    # then: nothing claimed, the row ended expired: no due time, no attempt spent, the reason kept
    assert (list(batch), batch.expired) == ([], 1)
    row = Delivery.objects.get(consumer=ADMINS)
    assert (row.status, row.due_at, row.attempts, row.last_error) == (Delivery.Status.EXPIRED, None, 0, REASON)
    assert not DeliveryAttempt.objects.filter(delivery=row).exists()
    assert tallies.read()[(tallies.DELIVERIES, ADMINS, Delivery.Status.EXPIRED)] == before + 1
    # one INFO line, with the event id, and nothing about the user
    [line] = [record for record in caplog.records if "expired" in record.getMessage()]
    assert line.levelno == logging.INFO and str(event.event_id) in line.getMessage()
    assert "@" not in line.getMessage()
    # and no mail: a drain finds nothing to send; the welcome e-mail (deadline 3 days) is sent
    run_due(ADMINS, WELCOME)
    assert [message.to for message in mail.outbox] == [[User.objects.get(pk=event.user_id).email]]


def test_an_expired_delivery_is_neither_a_failure_nor_a_dead_letter() -> None:
    UserCreatedFactory(occurred_at=days_ago(2))

    run_due(ADMINS)

    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists()
    assert tallies.read().get((tallies.DELIVERIES, ADMINS, Delivery.Status.FAILED), 0) == 0


def test_a_batch_partly_past_its_deadline_claims_the_rest() -> None:
    old, new = UserCreatedFactory(occurred_at=days_ago(2)), UserCreatedFactory()

    batch = ledger.claim(consumer=ADMINS, owner="a:1:x", limit=2)

    assert ([claim.event_id for claim in batch], batch.expired) == ([new.event_id], 1)
    assert Delivery.objects.get(consumer=ADMINS, event_id=old.event_id).status == Delivery.Status.EXPIRED


@pytest.mark.parametrize(("expired", "rings"), [(3, [True]), (1, [])], ids=["batch full", "batch not full"])
def test_a_drain_whose_whole_batch_expired_rings_again_when_more_may_be_due(
    settings, monkeypatch: pytest.MonkeyPatch, expired: int, rings: list[bool]
) -> None:
    # given: drains of 2, and 3 (or 1) admin notices past their deadline
    settings.EVENTS_BATCH_SIZE = 2
    for _ in range(expired):
        UserCreatedFactory(occurred_at=days_ago(2))
    rung: list[bool] = []
    consumer = get_consumer(ADMINS)
    monkeypatch.setattr(consumer, "ring", lambda *, countdown=None, force=False: rung.append(force))

    # when
    ran = draining.drain(consumer)

    # then: nothing ran; a full batch rings (forced) for the rest, a short one does not
    assert ran == 0
    assert rung == rings
    assert Delivery.objects.filter(consumer=ADMINS, status=Delivery.Status.EXPIRED).count() == min(expired, 2)


def test_replaying_an_expired_delivery_restarts_its_clock_in_the_backlog_lane_and_runs_it(settings) -> None:
    # given: an admin notice that expired
    UserCreatedFactory(occurred_at=days_ago(2))
    run_due(ADMINS)
    row = Delivery.objects.get(consumer=ADMINS)
    assert row.status == Delivery.Status.EXPIRED

    # when: an operator replays it
    before = timezone.now()
    deliveries_make_due(deliveries=[row])

    # then: due, in the backlog lane, its deadline counted from the replay; a drain sends it
    row.refresh_from_db()
    assert (row.status, row.backlog) == (Delivery.Status.PENDING, True)
    assert before + timedelta(days=1) <= row.expires_at <= timezone.now() + timedelta(days=1)
    run_due(ADMINS)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.DONE, 1)
    assert len(mail.outbox) == len(settings.ADMIN_EMAILS) > 0


def test_replay_events_expired_replays_only_the_expired(
    capsys: pytest.CaptureFixture[str], django_capture_on_commit_callbacks
) -> None:
    UserCreatedFactory(occurred_at=days_ago(2))
    run_due(ADMINS)
    failed = Delivery.objects.get(consumer=WELCOME)
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED, due_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("replay_events", "--consumer", "notifications", "--expired")

    assert Delivery.objects.get(consumer=ADMINS).status == Delivery.Status.PENDING
    assert Delivery.objects.get(pk=failed.pk).status == Delivery.Status.FAILED
    assert "Replayed 1 delivery" in capsys.readouterr().out


def test_a_deadline_that_is_not_a_positive_duration_fails_the_system_check(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = get_consumer(ADMINS)
    monkeypatch.setattr(consumer, "deadline", timedelta(0))

    errors = delivery_guarantee_errors(
        conf={
            "accept_content": ["json"],
            "task_serializer": "json",
            "task_time_limit": 60,
            "broker_transport_options": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
            "task_publish_retry": False,
            "beat_schedule": {"sweep": {"task": "events.tasks.sweep_deliveries"}},
        },
        declared=[consumer],
        routes={consumer.task.name: consumer.queue},
        lease=12,
        renew_every=4,
        sweep_interval=10,
    )

    assert [error.id for error in errors] == ["events.E015"]
    assert ADMINS in errors[0].msg


def test_deadlines_are_said_as_they_were_meant() -> None:
    assert [describe(timedelta(**kw)) for kw in ({"days": 1}, {"days": 3}, {"hours": 1}, {"minutes": 90})] == [
        "1 day",
        "3 days",
        "1 hour",
        "90 minutes",
    ]
