"""The delivery core under the faults that used to beat it: rows are the truth, messages are doorbells."""

from __future__ import annotations

import textwrap
import time
from collections import Counter

import pytest
import redis
from django.db import connection

from audit.models import AuditEntry
from crm.models import ContactSync
from devtools.fakes import CRMResponse
from devtools.processes import wait_until
from events.models import Delivery, DeliveryAttempt
from notifications.models import Notification
from tests.faults.conftest import CONSUMER_COUNT, SIGNUP_CONSUMERS, Stack, assert_every_effect_done_once
from users.events import UserCreated
from users.models import User

pytestmark = pytest.mark.faults

WELCOME = "notifications.send_welcome_email"
ADMINS = "notifications.notify_admins"

# The production defaults for what recovery after a crash depends on (fault tests shorten them).
PRODUCTION_RECOVERY = {"EVENTS_LEASE": "12", "EVENTS_LEASE_RENEW_EVERY": "4", "EVENTS_SWEEP_INTERVAL": "10"}


def assert_each_mail_recorded_once_and_copies_share_its_message_id(stack: Stack) -> None:
    """Every copy the server got carries the Message-ID of one recorded mail; one record per mail."""
    recorded = dict(Notification.objects.values_list("message_id", "recipient"))
    assert len(recorded) == Notification.objects.count()
    received = Counter((message["Message-ID"], message["X-Envelope-To"]) for message in stack.smtp.messages)
    assert {message_id for message_id, _to in received} == set(recorded), (received, recorded)
    assert all(recorded[message_id] == to for message_id, to in received)


def test_a_first_retry_due_at_once_is_not_lost_with_the_sweep_off(stack: Stack, password: str) -> None:
    # given: the first retry is due at once (the case that used to lose it to its own lease), no sweep
    stack.env["EVENTS_RETRY_FIRST"] = "0"
    stack.crm.first_per_path = CRMResponse(status=503)
    stack.worker()
    emails = [f"user{n}@example.com" for n in range(6)]

    # when: six signups, each contact's first CRM request failing
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    # then: every contact synced (each after exactly one failure), every other effect once
    assert_every_effect_done_once(stack, emails, timeout=60)
    assert Counter(request.path for request in stack.crm.requests) == Counter(
        {f"/contacts/{user.pk}": 2 for user in User.objects.all()}
    )


def test_a_replay_during_an_in_flight_send_sends_one_email_and_ends_done(stack: Stack, password: str) -> None:
    # given: a slow mail server, so the welcome e-mail is in flight when the operator replays it
    stack.smtp.delay = 3.0
    stack.worker()
    stack.beat()
    assert stack.web.signup("ann@example.com", password)[0] == 302
    running = DeliveryAttempt.objects.filter(delivery__consumer=WELCOME, outcome=DeliveryAttempt.Outcome.RUNNING)
    wait_until(lambda: running.exists() and stack.smtp.data_started >= 1, timeout=30, describe=stack.logs)
    event_id = str(running.get().delivery.event_id)

    # when
    result = stack.manage("replay_events", "--consumer", WELCOME, "--event", event_id)

    # then: one e-mail, and the delivery ends done after its one attempt
    assert result.returncode == 0, result.stderr
    assert_every_effect_done_once(stack, ["ann@example.com"])
    welcome = Delivery.objects.get(consumer=WELCOME)
    assert (welcome.status, welcome.attempts) == (Delivery.Status.DONE, 1)


def test_a_refused_admin_address_never_blocks_the_other_admins(stack: Stack, password: str) -> None:
    # given: two admins, the mail server refusing the first for good
    stack.env["ADMIN_EMAILS"] = "gone@example.com,ops@example.com"
    stack.smtp.refuse = {"gone@example.com"}
    stack.worker()
    stack.beat()

    # when
    assert stack.web.signup("ann@example.com", password)[0] == 302

    # then: the other admin has the notice once; the dead letter names the refused admin, not the user
    notice = Delivery.objects.filter(consumer=ADMINS)
    wait_until(
        lambda: (
            notice.filter(status=Delivery.Status.FAILED).exists()
            and Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count()
            == CONSUMER_COUNT - 1
        ),
        timeout=30,
        describe=stack.logs,
    )
    assert Counter(message["X-Envelope-To"] for message in stack.smtp.messages) == Counter(
        {"ann@example.com": 1, "ops@example.com": 1}
    )
    dead = notice.get()
    assert "gone@example.com" in dead.last_error
    assert "ann@example.com" not in dead.last_error
    assert list(Notification.objects.filter(kind="admin_notice").values_list("recipient", flat=True)) == [
        "ops@example.com"
    ]


def test_a_mail_outage_of_150_seconds_makes_no_dead_letter(stack: Stack, password: str) -> None:
    # given: the mail server refuses connections for 75 s, then answers 451 for 75 s
    stack.env["EVENTS_RETRY_CAP"] = "10"
    # The mail consumers' circuits open after 5 failures; then their probes are the attempts, as often.
    stack.env["EVENTS_CIRCUIT_PROBE_EVERY"] = "5"
    stack.smtp.stop()
    stack.worker()
    stack.beat()
    emails = ["ann@example.com", "bob@example.com"]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    # when: it comes back, in two steps
    dead_letters: list[int] = []

    def watch(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dead_letters.append(Delivery.objects.filter(status=Delivery.Status.FAILED).count())
            time.sleep(1)

    watch(75)
    stack.smtp.defer = True
    stack.smtp.start()
    watch(75)
    deferred = stack.smtp.data_started
    stack.smtp.defer = False

    # then: tried all along, never dead, and each mail sent once when the server is back
    assert max(dead_letters) == 0
    assert deferred >= 2
    mail = Delivery.objects.filter(consumer__in=[WELCOME, ADMINS])
    assert min(mail.values_list("attempts", flat=True)) >= 5
    assert_every_effect_done_once(stack, emails, timeout=30)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: SQLite has no server to cut")
def test_database_connections_killed_every_second_lose_nothing(stack: Stack, password: str) -> None:
    # given: a slow mail server, so sends are under way while the connections die
    stack.smtp.delay = 0.5
    stack.worker()
    stack.beat()
    emails = [f"user{n}@example.com" for n in range(5)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    # when: every other connection to the database is killed, every second, for 30 s
    killed = 0
    with connection.cursor() as cursor:
        for _ in range(30):
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            killed += cursor.fetchone()[0]
            time.sleep(1)

    # then: every effect done, each mail recorded once, every copy of a mail with one Message-ID
    assert killed > 0
    wait_until(
        lambda: (
            Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count()
            == len(emails) * CONSUMER_COUNT
        ),
        timeout=60,
        describe=stack.logs,
    )
    assert Notification.objects.count() == len(emails) * 2
    assert_each_mail_recorded_once_and_copies_share_its_message_id(stack)
    assert (
        AuditEntry.objects.filter(action=AuditEntry.Action.USER_CREATED).count()
        == ContactSync.objects.count()
        == len(emails)
    )
    copies = len(stack.smtp.messages) - Notification.objects.count()
    print(f"{killed} connections killed; {copies} mail copies resent, each with its first Message-ID")


def test_a_worker_killed_mid_send_recovers_within_30_seconds_of_its_restart(stack: Stack, password: str) -> None:
    # given: the production lease and sweep interval, a slow mail server, the welcome e-mail in flight
    stack.env.update(PRODUCTION_RECOVERY)
    stack.smtp.delay = 2.0
    worker = stack.worker()
    stack.beat()
    assert stack.web.signup("ann@example.com", password)[0] == 302
    wait_until(lambda: stack.smtp.data_started >= 1, timeout=30, describe=stack.logs)

    # when: the worker is killed and started again
    worker.kill()
    stack.worker()
    restarted = time.monotonic()
    welcome = Delivery.objects.filter(consumer=WELCOME, status=Delivery.Status.DONE)
    wait_until(welcome.exists, timeout=45, describe=stack.logs)
    recovered = time.monotonic() - restarted

    # then: back within 30 s; a mail resent carries the first one's Message-ID
    print(f"welcome e-mail done {recovered:.1f} s after the restart")
    assert recovered < 30
    wait_until(
        lambda: (
            Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count() == CONSUMER_COUNT
        ),
        timeout=45,
        describe=stack.logs,
    )
    assert_each_mail_recorded_once_and_copies_share_its_message_id(stack)
    assert Notification.objects.filter(kind="welcome").count() == 1
    outcomes = list(
        DeliveryAttempt.objects.filter(delivery__consumer=WELCOME).order_by("number").values_list("outcome", flat=True)
    )
    assert outcomes[0] == DeliveryAttempt.Outcome.LOST and outcomes[-1] == DeliveryAttempt.Outcome.DONE


def test_a_backlog_after_an_outage_rings_at_most_one_doorbell_per_consumer_per_sweep(stack: Stack) -> None:
    # given: 2,000 signups owed (their dispatch lost), no worker
    from bench.benchmarks import bulk_events

    bulk_events(2000)
    owed = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    assert owed == 2000 * CONSUMER_COUNT

    # when: three sweeps
    sweeps = textwrap.dedent(
        """
        import django
        django.setup()
        from datetime import timedelta
        from django.utils import timezone
        from events.models import SweepRun
        from events.sweep import sweep
        for _ in range(3):
            SweepRun.objects.update(started_at=timezone.now() - timedelta(hours=1))
            print(len(sweep()))
        """
    )
    result = stack.manage(script=sweeps)
    assert result.returncode == 0, result.stderr

    # then: three doorbells per consumer, not one per delivery
    broker = redis.Redis.from_url(stack.redis.url())
    assert {c.queue: broker.llen(c.queue) for c in SIGNUP_CONSUMERS} == {c.queue: 3 for c in SIGNUP_CONSUMERS}

    # and: one worker drains the whole backlog from those doorbells alone
    started = time.monotonic()
    stack.worker()
    done = Delivery.objects.filter(status=Delivery.Status.DONE)
    wait_until(lambda: done.count() == owed, timeout=300, describe=stack.queues)
    print(f"{owed} deliveries drained in {time.monotonic() - started:.1f} s, start-up included")
    assert len(stack.smtp.messages) == Notification.objects.count() == 2000 * 2
    assert (
        AuditEntry.objects.filter(action=AuditEntry.Action.USER_CREATED).count() == ContactSync.objects.count() == 2000
    )


def test_two_drains_never_run_one_delivery_twice(stack: Stack, password: str) -> None:
    # given: doorbells rung many times over for one signup, two workers, a slow mail server
    stack.smtp.delay = 0.5
    assert stack.web.signup("ann@example.com", password)[0] == 302
    ring = textwrap.dedent(
        """
        import django
        django.setup()
        from events.api import consumers_of
        from users.signals import user_created
        for declared in consumers_of(user_created):
            for _ in range(5):
                declared.task.delay()
        """
    )
    assert stack.manage(script=ring).returncode == 0
    stack.worker()
    stack.worker()

    assert_every_effect_done_once(stack, ["ann@example.com"])
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


def test_a_worker_killed_holding_prefetched_doorbells_loses_nothing(stack: Stack, password: str) -> None:
    # given: three signups, every doorbell rung four more times, a slow CRM, no worker yet
    stack.env["CRM_READ_TIMEOUT"] = "5"
    stack.crm.default = CRMResponse(delay=1.0)
    emails = [f"user{n}@example.com" for n in range(3)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302
    ring = textwrap.dedent(
        """
        import django
        django.setup()
        from events.api import consumers_of
        from users.signals import user_created
        for declared in consumers_of(user_created):
            for _ in range(4):
                declared.task.delay()
        """
    )
    assert stack.manage(script=ring).returncode == 0

    # when: a worker takes its prefetched doorbells and is SIGKILLed mid CRM call
    worker = stack.worker()
    wait_until(lambda: len(stack.crm.requests) >= 1, timeout=30, describe=stack.logs)
    worker.kill()
    stack.worker()
    stack.beat()

    # then: every effect once (a CRM call may repeat, with its Idempotency-Key)
    assert_every_effect_done_once(stack, emails, timeout=60)
