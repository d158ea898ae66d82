"""Live work before a backfill, and deadlines, with a real worker, a real Redis, a real CRM and a real SMTP server."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from crm.models import ContactSync
from devtools.processes import wait_until
from events.api import publish
from events.models import Delivery, Event
from events.operator.measures import percentile
from notifications.models import Notification
from tests.factories import PASSWORD
from tests.faults.conftest import ADMIN_EMAILS, CONSUMER_COUNT, SIGNUP_CONSUMERS, Stack
from users.events import UserCreated, UserCreationSource
from users.models import User
from users.signals import user_created

pytestmark = pytest.mark.faults

CRM = "crm.sync_contact"
WELCOME = "notifications.send_welcome_email"
ADMINS = "notifications.notify_admins"
BACKFILL = 2000
SIGNUPS = 8
# The bound: a backfill never delays a new signup's CRM contact by more than this.
LIVE_LAG_BOUND = 2.0


def old_signups_without_a_crm_delivery(count: int) -> list[User]:
    """Create count users whose UserCreated occurred a year ago, owed to no consumer yet (the CRM came later)."""
    password = make_password(PASSWORD)
    occurred = timezone.now() - timedelta(days=365)
    User.objects.bulk_create(
        [User(email=f"old-{uuid.uuid4().hex}@example.com", name="Old", password=password) for _ in range(count)]
    )
    users = list(User.objects.filter(email__startswith="old-"))
    events = [UserCreated(user_id=user.pk, source=UserCreationSource.SERVICE, occurred_at=occurred) for user in users]
    Event.objects.bulk_create(
        [
            Event(id=e.event_id, name=e.name, version=e.version, payload=e.to_dict(), occurred_at=e.occurred_at)
            for e in events
        ]
    )
    return users


def test_a_backfill_of_2000_never_delays_a_new_signup_s_crm_contact_by_more_than_2_s(stack: Stack) -> None:
    # given: 2,000 users of a year ago the CRM never got (a backfill owes them), a worker, the sweep, the web
    old = old_signups_without_a_crm_delivery(BACKFILL)
    stack.worker().wait_for_output(" ready.", timeout=60)
    stack.beat()
    stack.web  # noqa: B018 (started before the clock runs)

    # when: the backfill is made due, and users sign up while it drains
    result = stack.manage("replay_events", "--consumer", "crm", "--since", "2000-01-01")
    assert result.returncode == 0, result.stderr
    assert f"Replayed {BACKFILL} deliveries" in result.stdout
    wait_until(lambda: ContactSync.objects.count() > 50, timeout=60, describe=stack.logs)
    posted: dict[str, float] = {}
    for number in range(SIGNUPS):
        email = f"new-{number}@example.com"
        status, took = stack.web.signup(email, PASSWORD)
        # The commit is inside the POST: counted from the POST's start, the lag is never understated.
        posted[email] = time.monotonic() - took
        assert status == 302
        time.sleep(0.3)

    # then: every contact synced once, old and new (counted at the CRM, per user)
    wait_until(
        lambda: ContactSync.objects.count() == BACKFILL + SIGNUPS,
        timeout=180,
        describe=lambda: f"{ContactSync.objects.count()} synced\n{stack.logs()}",
    )
    time.sleep(1.0)  # Give a duplicate, if any, the time to show itself.
    requests = list(stack.crm.requests)
    per_path = Counter(request.path for request in requests)
    new_users = {user.email: user for user in User.objects.filter(email__in=posted)}
    expected = {f"/contacts/{user.pk}" for user in [*old, *new_users.values()]}
    assert per_path == Counter(dict.fromkeys(expected, 1))
    # and: each new user's contact within the bound of its signup, while the backfill was still draining
    at = {request.path: (index, request.received_at) for index, request in enumerate(requests)}
    last_backfilled = max(at[f"/contacts/{user.pk}"][0] for user in old)
    lags = []
    for email, started in posted.items():
        index, received = at[f"/contacts/{new_users[email].pk}"]
        assert index < last_backfilled, f"{email} was synced after the backfill ended: the test proves nothing"
        lags.append(received - started)
    p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
    print(f"live CRM lag during a backfill of {BACKFILL}: p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(lags):.3f} s")
    assert max(lags) <= LIVE_LAG_BOUND, sorted(lags)


def test_an_expired_delivery_is_not_sent_while_a_fresh_one_is(stack: Stack) -> None:
    # given: a signup of four days ago whose mails are still owed (an outage): the welcome e-mail's
    # deadline is 3 days, the admin notice's 1 day; the audit, analytics and CRM never expire
    # (bulk_create: the manager's create_user would publish a signup of its own, now)
    User.objects.bulk_create([User(email="stale@example.com", name="Stale", password=make_password(PASSWORD))])
    stale = User.objects.get(email="stale@example.com")
    with transaction.atomic():
        publish(
            signal=user_created,
            event=UserCreated(
                user_id=stale.pk, source=UserCreationSource.SERVICE, occurred_at=timezone.now() - timedelta(days=4)
            ),
        )
    stack.worker().wait_for_output(" ready.", timeout=60)
    stack.beat()  # its sweep rings the consumers of the stale signup

    # when: a new user signs up
    assert stack.web.signup("fresh@example.com", PASSWORD)[0] == 302

    # then: the fresh signup's effects all done; the stale one's mails expired, its other effects done
    fresh = User.objects.get(email="fresh@example.com")
    stale_rows = Delivery.objects.filter(event__user_id=stale.pk)
    fresh_rows = Delivery.objects.filter(event__user_id=fresh.pk)
    wait_until(
        lambda: (
            fresh_rows.filter(status=Delivery.Status.DONE).count() == CONSUMER_COUNT
            and not stale_rows.filter(status=Delivery.Status.PENDING).exists()
            and len(stack.smtp.messages) >= 1 + len(ADMIN_EMAILS)
        ),
        timeout=45,
        describe=lambda: f"{list(Delivery.objects.values_list('consumer', 'status', 'expires_at'))}\n{stack.logs()}",
    )
    time.sleep(1.0)  # A mail sent late, if any, has the time to arrive.
    assert dict(stale_rows.values_list("consumer", "status")) == {
        **{declared.name: Delivery.Status.DONE for declared in SIGNUP_CONSUMERS},
        WELCOME: Delivery.Status.EXPIRED,
        ADMINS: Delivery.Status.EXPIRED,
    }
    assert {row.attempts for row in stale_rows.filter(status=Delivery.Status.EXPIRED)} == {0}
    # counted at the real SMTP server, per recipient: nothing for the stale signup
    sent_to = Counter(message["X-Envelope-To"] for message in stack.smtp.messages)
    assert sent_to == Counter({"fresh@example.com": 1, **dict.fromkeys(ADMIN_EMAILS, 1)})
    assert not Notification.objects.filter(user=stale).exists()
    assert ContactSync.objects.filter(user=stale).count() == 1
