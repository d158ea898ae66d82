from __future__ import annotations

import pytest
from django.core import mail

from notifications.models import Notification
from notifications.tasks import notify_admins, send_welcome_email
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_send_welcome_email_sends_each_owed_welcome_once() -> None:
    UserCreatedFactory()

    send_welcome_email.task.apply().get()
    send_welcome_email.task.apply().get()

    assert len(mail.outbox) == 1
    assert Notification.objects.get().kind == Notification.Kind.WELCOME


def test_notify_admins_notifies_every_admin(settings) -> None:
    settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
    UserCreatedFactory()

    notify_admins.task.apply().get()

    assert len(mail.outbox) == 2
