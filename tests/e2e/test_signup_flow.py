"""A signup through the real form, its side effects done by a real worker over a real Redis."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from analytics.models import AnalyticsEvent
from audit.models import AuditEntry
from crm.models import ContactSync
from devtools.fakes import FakeCRM, SMTPSink
from devtools.processes import ManagedProcess, wait_until
from events.models import Event
from notifications.models import Notification
from users.models import User

pytestmark = pytest.mark.e2e


def test_signup_form_triggers_every_side_effect_exactly_once(
    worker: ManagedProcess, smtp_server: SMTPSink, crm_server: FakeCRM, password: str
) -> None:
    # given
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("users:signup"))

    # when
    response = client.post(
        reverse("users:signup"),
        {
            "email": "ann@example.com",
            "name": "Ann Lee",
            "password1": password,
            "password2": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )

    # then: the signup itself
    assert response.status_code == 302
    user = User.objects.get(email="ann@example.com")
    event = Event.objects.get()
    admin_count = len(settings.ADMIN_EMAILS)

    def all_done() -> bool:
        return (
            len(smtp_server.messages) >= 1 + admin_count
            and Notification.objects.count() >= 1 + admin_count
            and AuditEntry.objects.exists()
            and AnalyticsEvent.objects.exists()
            and ContactSync.objects.exists()
        )

    wait_until(all_done, timeout=60, describe=lambda: f"Worker log:\n{worker.log()[-5000:]}")
    time.sleep(1.0)  # Let any duplicate delivery show itself before counting.

    # the welcome e-mail and the admin notices, through a real SMTP server
    recipients = sorted(message["X-Envelope-To"] for message in smtp_server.messages)
    assert recipients == sorted(["ann@example.com", *settings.ADMIN_EMAILS])
    welcome = next(message for message in smtp_server.messages if message["To"] == "ann@example.com")
    # To an unproved mailbox: a confirmation link and nothing the signer-up chose (the display name).
    assert welcome["Subject"] == "Confirm your e-mail address for Relay"
    assert welcome.is_multipart()
    assert "/confirm-email/" in welcome.as_string() and "Ann Lee" not in welcome.as_string()
    assert Notification.objects.filter(kind=Notification.Kind.WELCOME, user=user).count() == 1
    assert Notification.objects.filter(kind=Notification.Kind.ADMIN_NOTICE, user=user).count() == admin_count
    # the audit entry
    entry = AuditEntry.objects.get()
    assert (entry.target_user_id, entry.source, entry.event_id) == (user.pk, "signup_form", event.pk)
    # the analytics event
    tracked = AnalyticsEvent.objects.get()
    assert (tracked.name, tracked.user_id, tracked.event_id) == ("user_signed_up", user.pk, event.pk)
    # the CRM request, received by a real HTTP server
    [request] = crm_server.requests
    assert request.path == f"/contacts/{user.pk}"
    assert request.headers["idempotency-key"] == str(event.pk)
    assert request.body["email"] == "ann@example.com"
    sync = ContactSync.objects.get()
    assert sync.response_status == 200
