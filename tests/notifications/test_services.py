from __future__ import annotations

import smtplib

import pytest
from django.core import mail

from devtools.redis_server import free_port
from notifications.models import Notification
from notifications.services import admin_notice_send, welcome_email_send
from tests.factories import UserCreatedFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_welcome_email_goes_to_the_new_user_in_text_and_html() -> None:
    # given
    user = UserFactory(email="ann@example.com", name="Ann")
    event = UserCreatedFactory(user_id=user.pk)

    # when
    notification = welcome_email_send(event=event)

    # then
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ann@example.com"]
    assert message.subject == "Welcome to Relay, Ann!"
    assert "Hello Ann," in message.body
    assert message.alternatives[0].mimetype == "text/html"
    assert "Welcome, Ann!" in message.alternatives[0].content
    assert notification is not None
    assert (notification.kind, notification.user_id, notification.event_id, notification.recipient) == (
        Notification.Kind.WELCOME,
        user.pk,
        event.event_id,
        "ann@example.com",
    )


def test_welcome_email_is_sent_once_per_event() -> None:
    event = UserCreatedFactory()

    welcome_email_send(event=event)
    welcome_email_send(event=event)

    assert len(mail.outbox) == 1
    assert Notification.objects.filter(event_id=event.event_id).count() == 1


def test_welcome_email_is_skipped_when_the_user_is_gone() -> None:
    user = UserFactory()
    event = UserCreatedFactory(user_id=user.pk)
    user.delete()

    assert welcome_email_send(event=event) is None
    assert mail.outbox == []


def test_admin_notice_goes_to_each_admin_address(settings) -> None:
    settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
    user = UserFactory(name="Ann")
    event = UserCreatedFactory(user_id=user.pk)

    sent = admin_notice_send(event=event)

    assert sorted(message.to[0] for message in mail.outbox) == ["founders@example.com", "ops@example.com"]
    assert all(message.subject == f"[Relay] New signup: user #{user.pk}" for message in mail.outbox)
    assert str(event.event_id) in mail.outbox[0].body
    assert {notification.recipient for notification in sent} == {"ops@example.com", "founders@example.com"}


def test_admin_notice_sends_only_what_was_not_sent_yet(settings) -> None:
    settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
    event = UserCreatedFactory()
    Notification.objects.create(
        kind=Notification.Kind.ADMIN_NOTICE,
        user_id=event.user_id,
        event_id=event.event_id,
        recipient="ops@example.com",
        subject="sent before a crash",
    )

    admin_notice_send(event=event)
    admin_notice_send(event=event)

    assert [message.to for message in mail.outbox] == [["founders@example.com"]]
    assert Notification.objects.filter(kind=Notification.Kind.ADMIN_NOTICE).count() == 2


def test_admin_notice_without_admin_addresses_sends_nothing(settings) -> None:
    settings.ADMIN_EMAILS = []

    assert admin_notice_send(event=UserCreatedFactory()) == []
    assert mail.outbox == []


def test_unreachable_mail_server_raises_and_records_nothing(settings) -> None:
    # given: a real SMTP backend pointed at a port nobody listens on
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    event = UserCreatedFactory()

    # when / then
    with pytest.raises((OSError, smtplib.SMTPException)):
        welcome_email_send(event=event)
    assert not Notification.objects.exists()


class RefusingSMTP:
    """A real SMTP server (aiosmtpd) that answers RCPT TO with a fixed code."""

    def __init__(self, code: int) -> None:
        from aiosmtpd.controller import Controller

        self.code = code
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        return f"{self.code} mailbox unavailable"


@pytest.mark.parametrize("code, error", [(550, "MailRejectedError"), (451, "SMTPException")])
def test_refused_recipient_is_told_without_the_address(settings, code: int, error: str) -> None:
    # given: a real SMTP server that refuses the recipient
    from notifications.services import MailRejectedError

    server = RefusingSMTP(code)
    server.controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 5},
        }
    }
    user = UserFactory(email="refused@example.com")
    event = UserCreatedFactory(user_id=user.pk)

    # when
    try:
        with pytest.raises((MailRejectedError, smtplib.SMTPException)) as raised:
            welcome_email_send(event=event)
    finally:
        server.controller.stop()

    # then: permanent for 5xx, retryable for 4xx, and the address is nowhere in the error
    assert type(raised.value).__name__ == error
    assert "refused@example.com" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert not Notification.objects.exists()
