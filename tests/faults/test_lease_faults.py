"""The lease as a fence, and the database's own faults: what a drain may still do once it lost its leases."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from django.db import connection

from analytics.models import AnalyticsEvent
from audit.models import AuditEntry
from crm.models import ContactSync
from devtools.processes import wait_until
from events.models import Delivery, DeliveryAttempt
from notifications.models import Notification
from tests.faults.conftest import CONSUMER_COUNT, Stack, assert_every_effect_done_once
from users.models import User

pytestmark = pytest.mark.faults

WELCOME = "notifications.send_welcome_email"


def assert_attempt_history_whole() -> None:
    """Every delivery has one attempt row per attempt, numbered 1..n, none left running."""
    for row in Delivery.objects.all():
        numbers = list(DeliveryAttempt.objects.filter(delivery=row).order_by("number").values_list("number", flat=True))
        assert numbers == list(range(1, row.attempts + 1)), (row.consumer, row.event_id, numbers, row.attempts)
    assert not DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.RUNNING).exists()


def test_a_frozen_drain_sends_nothing_it_no_longer_holds_and_leaves_the_history_whole(
    stack: Stack, password: str
) -> None:
    # given: eight welcome e-mails owed, a mail server taking 1 s a message, a drain with time to spare
    stack.env.update({"EVENTS_TASK_TIME_LIMIT": "60", "ADMIN_EMAILS": ""})
    stack.smtp.delay = 1.0
    emails = [f"user{n}@example.com" for n in range(8)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302
    frozen = stack.worker(concurrency=1)
    welcome = Delivery.objects.filter(consumer=WELCOME)
    running = DeliveryAttempt.objects.filter(delivery__consumer=WELCOME, outcome=DeliveryAttempt.Outcome.RUNNING)
    wait_until(lambda: running.count() == len(emails) and stack.smtp.data_started >= 1, timeout=30, describe=stack.logs)

    # when: its worker is frozen mid-send (renewals too) until another worker has taken the batch over
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        stack.worker()
        stack.beat()
        taken = DeliveryAttempt.objects.filter(delivery__consumer=WELCOME, number=2)
        wait_until(lambda: taken.count() == len(emails), timeout=30, describe=stack.logs)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)

    # then: the woken drain started no send; only the one in flight at the freeze may have a copy
    wait_until(
        lambda: (
            welcome.filter(status=Delivery.Status.DONE).count() == len(emails)
            and not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()
        ),
        timeout=60,
        describe=stack.logs,
    )
    time.sleep(2.0)  # Give a late send of the woken drain, if any, the time to show itself.
    copies = Counter(message["X-Envelope-To"] for message in stack.smtp.messages)
    assert set(copies) == set(emails)
    doubled = {email for email, count in copies.items() if count > 1}
    assert len(doubled) <= 1 and max(copies.values()) <= 2, copies
    assert len({message["Message-ID"] for message in stack.smtp.messages}) == len(emails)
    assert Notification.objects.count() == len(emails)
    assert "no longer holds delivery" in frozen.log()
    assert_attempt_history_whole()
    for user in User.objects.all():
        assert AuditEntry.objects.filter(target_user_id=user.pk).count() == 1
        assert AnalyticsEvent.objects.filter(user=user).count() == 1
        assert ContactSync.objects.filter(user=user).count() == 1
    print(f"welcome copies per user: {sorted(copies.values())}")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: a read-only database is a server's setting"
)
def test_a_database_read_only_for_20_seconds_recovers_within_30_seconds_of_the_reset(
    stack: Stack, password: str
) -> None:
    # given: signups owed to every consumer, workers and the sweep running on connections opened read-only
    emails = [f"user{n}@example.com" for n in range(4)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302
    database = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    try:
        stack.worker()
        stack.beat()
        time.sleep(20)
        assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == len(emails) * CONSUMER_COUNT
    finally:
        # when: the database takes writes again (new sessions; the open ones stay read-only)
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    reset = time.monotonic()

    # then: every effect done once within 30 s, by processes that never died
    assert_every_effect_done_once(stack, emails, timeout=30)
    recovered = time.monotonic() - reset
    print(f"all done {recovered:.1f} s after the reset")
    assert recovered < 30
    assert all(process.alive() for process in stack.processes)
    logs = "\n".join(process.log() for process in stack.processes)
    assert "raised unexpected" not in logs
