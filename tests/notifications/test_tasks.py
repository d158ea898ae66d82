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


def test_a_batch_of_emails_shares_one_connection_and_one_refusal_spoils_nothing(settings) -> None:
    # given: a real SMTP server that refuses one of three new users for good
    from devtools.fakes import running_smtp
    from events.models import Delivery
    from events.testing import run_due
    from tests.factories import UserFactory

    events = [UserCreatedFactory(user_id=UserFactory(email=f"user{n}@example.com").pk) for n in range(3)]
    with running_smtp() as smtp:
        smtp.refuse = {"user1@example.com"}
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": smtp.port, "timeout": 5},
            }
        }

        # when
        run_due(send_welcome_email.name)

    # then: one SMTP session for the batch; the two others sent; the refused one a dead letter
    assert smtp.greetings == 1
    assert sorted(message["X-Envelope-To"] for message in smtp.messages) == ["user0@example.com", "user2@example.com"]
    statuses = dict(Delivery.objects.filter(consumer=send_welcome_email.name).values_list("event_id", "status"))
    assert [statuses[event.event_id] for event in events] == ["done", "failed", "done"]
