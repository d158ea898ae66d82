"""Rate limits the whole fleet keeps: a quota-enforcing CRM and a rate-limited SMTP server, a recovery owed to them."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bench.benchmarks import bulk_events
from crm.models import ContactSync
from devtools.processes import wait_until
from events.models import Delivery
from notifications.models import Notification
from tests.faults.conftest import ADMIN_EMAILS, Stack

pytestmark = pytest.mark.faults

CRM = "crm.sync_contact"
OWED = 150
QUOTA = (10, 1.0)
# What the quota allows for OWED requests: its burst at once, then its rate (the 15 s).
QUOTA_ALLOWS = OWED / QUOTA[0]


def busiest_second(times: list[float]) -> int:
    """Return the most requests received within any one second."""
    times = sorted(times)
    start, most = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def _recover_crm_backlog(stack: Stack, *, workers: int) -> tuple[float, int, int]:
    """Owe OWED contacts before any worker runs, start workers and the sweep; return (drain time, requests, refused)."""
    # given: a CRM that keeps a provider's quota, and 150 contacts owed to it (a recovery)
    stack.crm.quota = QUOTA
    stack.env["CRM_RATE_LIMIT"] = f"{QUOTA[0]}/s"
    bulk_events(OWED)
    synced = Delivery.objects.filter(consumer=CRM, status=Delivery.Status.DONE)

    # when
    for _ in range(workers):
        stack.worker()
    stack.beat()
    wait_until(lambda: synced.count() == OWED, timeout=120, describe=lambda: f"{stack.queues()}\n{stack.logs()}")

    # then: from the first request the CRM saw to the last contact synced
    took = time.monotonic() - stack.crm.requests[0].received_at
    requests, refused = len(stack.crm.requests), len(stack.crm.refused)
    busiest = busiest_second([request.received_at for request in stack.crm.requests])
    print(
        f"{OWED} owed contacts, {workers} worker(s): {requests} requests, {refused} refused, drained in {took:.1f} s,"
        f" at most {busiest} requests in a second"
    )
    # Sends are spaced, not bursts of a batch: a second holds about the quota (slack for a loaded machine).
    assert busiest <= 1.5 * QUOTA[0]
    return took, requests, refused


def _assert_each_contact_synced_once(stack: Stack) -> None:
    time.sleep(1.0)  # Give a duplicate, if any, the time to show itself.
    assert ContactSync.objects.count() == OWED
    refused = Counter(request.path for request in stack.crm.refused)
    accepted = Counter(request.path for request in stack.crm.requests) - refused
    assert len(accepted) == OWED and set(accepted.values()) == {1}, accepted.most_common(3)
    assert not Delivery.objects.exclude(status=Delivery.Status.DONE).filter(consumer=CRM).exists()


def test_a_crm_backlog_is_drained_within_the_quota(stack: Stack) -> None:
    took, requests, refused = _recover_crm_backlog(stack, workers=1)

    assert refused <= 0.05 * requests
    assert took <= 1.5 * QUOTA_ALLOWS
    _assert_each_contact_synced_once(stack)


def test_two_workers_together_keep_one_limit(stack: Stack) -> None:
    took, requests, refused = _recover_crm_backlog(stack, workers=2)

    assert refused <= 0.05 * requests
    assert took <= 1.5 * QUOTA_ALLOWS
    _assert_each_contact_synced_once(stack)


def test_a_mail_backlog_is_sent_within_the_providers_sending_rate(stack: Stack) -> None:
    # given: a mail server that answers "451 4.7.1 too many messages" beyond 20 a second, 100 signups owed
    stack.smtp.rate_limit = (20, 1.0)
    stack.env["EMAIL_RATE_LIMIT"] = "20/s"
    owed = 100
    bulk_events(owed)
    users = list(Delivery.objects.filter(consumer=CRM).values_list("event__payload__user_id", flat=True))
    expected = owed * (1 + len(ADMIN_EMAILS))

    # when
    started = time.monotonic()
    stack.worker()
    stack.beat()
    wait_until(
        lambda: not Delivery.objects.exclude(status=Delivery.Status.DONE).exists(),
        timeout=120,
        describe=lambda: f"{stack.queues()}\n{stack.logs()}",
    )
    took = time.monotonic() - started
    time.sleep(1.0)

    # then: every welcome e-mail and admin notice sent exactly once, few refused
    attempts = stack.smtp.data_started
    print(f"{expected} e-mails owed: {attempts} sends, {stack.smtp.rate_refused} refused, all sent in {took:.1f} s")
    assert stack.smtp.rate_refused <= 0.05 * attempts
    sent_to = Counter(message["X-Envelope-To"] for message in stack.smtp.messages)
    assert sum(sent_to.values()) == expected
    assert sent_to[ADMIN_EMAILS[0]] == owed and set(sent_to.values()) == {1, owed}
    assert Notification.objects.filter(kind=Notification.Kind.WELCOME).count() == owed
    assert Notification.objects.filter(user_id__in=users, kind=Notification.Kind.WELCOME).count() == owed
