"""Workers under a stalled external system: what keeps flowing, and what waits."""

from __future__ import annotations

import time

import pytest

from analytics.models import AnalyticsEvent
from audit.models import AuditEntry
from devtools.processes import wait_until
from events.models import Delivery
from notifications.models import Notification
from tests.faults.conftest import CONSUMER_COUNT, Stack
from tests.faults.test_delivery_core_faults import assert_each_mail_recorded_once_and_copies_share_its_message_id
from users.events import UserCreated
from users.models import User

pytestmark = pytest.mark.faults

STALL = 60.0


def test_a_mail_server_stalled_for_a_minute_never_holds_up_audit_and_analytics(stack: Stack, password: str) -> None:
    # given: the default worker setup (Procfile, make run): one worker for atomic consumers, one for external ones
    stack.worker(consumers="atomic")
    stack.worker(consumers="external")
    stack.beat()

    # when: the mail server takes every message and answers none for a minute, while users sign up
    stack.smtp.delay = STALL
    stalled = time.monotonic()
    emails = [f"user{n}@example.com" for n in range(5)]
    waits: list[float] = []
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302
        signed_up = time.monotonic()
        user = User.objects.get(email=email)
        wait_until(
            lambda user=user: (
                AuditEntry.objects.filter(target_user_id=user.pk).exists()
                and AnalyticsEvent.objects.filter(user=user).exists()
            ),
            timeout=30,
            describe=stack.logs,
        )
        waits.append(time.monotonic() - signed_up)
        time.sleep(6)
    mail_started = stack.smtp.data_started
    time.sleep(max(0.0, STALL - (time.monotonic() - stalled)))
    stack.smtp.delay = 0.0

    # then: each signup's audit and analytics entries within 5 s of it, mail was tried all along, and
    # once the server answers again every effect is done, each mail recorded once
    print(f"audit and analytics {', '.join(f'{wait:.1f}' for wait in waits)} s after each signup")
    assert max(waits) < 5
    assert mail_started >= 2
    wait_until(
        lambda: (
            Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count()
            == len(emails) * CONSUMER_COUNT
        ),
        timeout=90,
        describe=stack.logs,
    )
    assert Notification.objects.filter(kind=Notification.Kind.WELCOME).count() == len(emails)
    assert_each_mail_recorded_once_and_copies_share_its_message_id(stack)
    assert (
        AuditEntry.objects.filter(action=AuditEntry.Action.USER_CREATED).count()
        == AnalyticsEvent.objects.count()
        == len(emails)
    )
