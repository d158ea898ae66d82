from __future__ import annotations

import pytest
from django.core import mail

from events.retry import TRANSIENT_ERRORS
from notifications.models import Notification
from notifications.tasks import notify_admins, send_welcome_email
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_send_welcome_email_task_sends_the_welcome_email() -> None:
    event = UserCreatedFactory()

    send_welcome_email.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert len(mail.outbox) == 1
    assert Notification.objects.get().kind == Notification.Kind.WELCOME


def test_notify_admins_task_notifies_every_admin(settings) -> None:
    settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
    event = UserCreatedFactory()

    notify_admins.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert len(mail.outbox) == 2


@pytest.mark.parametrize("task", [send_welcome_email, notify_admins])
def test_notification_tasks_retry_transient_failures_with_backoff(task) -> None:
    assert task.autoretry_for == TRANSIENT_ERRORS
    assert task.retry_backoff and task.retry_jitter
    assert task.max_retries is not None
