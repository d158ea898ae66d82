from __future__ import annotations

import re
import smtplib
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.utils import timezone
from django.utils.http import urlsafe_base64_decode

import notifications.services
from devtools.redis_server import free_port
from events.models import Delivery, Event
from notifications.models import Notification
from notifications.services import (
    admin_notice_send,
    email_confirmation_send,
    password_reset_email_send,
    welcome_email_send,
)
from tests.factories import UserCreatedFactory, UserFactory
from users.events import UserEmailConfirmationRequested, UserPasswordResetRequested
from users.tokens import email_confirmation_token_user

pytestmark = pytest.mark.django_db


HOSTILE_NAME = "URGENT: verify at https://evil.example/login now!"


def _links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


def test_welcome_email_asks_an_unconfirmed_address_to_confirm_in_text_and_html(settings) -> None:
    # given
    settings.SITE_URL = "https://relay.example"
    user = UserFactory(email="ann@example.com", name="Ann")
    event = UserCreatedFactory(user_id=user.pk)

    # when
    notification = welcome_email_send(event=event)

    # then
    [message] = mail.outbox
    assert message.to == ["ann@example.com"]
    assert message.subject == "Confirm your e-mail address for Relay"
    assert "created for ann@example.com" in message.body
    html = message.alternatives[0].content
    assert message.alternatives[0].mimetype == "text/html"
    [confirm] = [link for link in _links(message.body) if "/confirm-email/" in link]
    assert confirm.startswith("https://relay.example/confirm-email/")
    assert f'href="{confirm}"' in html
    assert email_confirmation_token_user(token=confirm.rstrip("/").rsplit("/", 1)[1]) == user
    assert notification is not None
    assert (notification.kind, notification.user_id, notification.event_id, notification.recipient) == (
        Notification.Kind.WELCOME,
        user.pk,
        event.event_id,
        "ann@example.com",
    )


def test_welcome_email_to_an_unconfirmed_address_carries_nothing_the_signer_up_chose() -> None:
    # given: a stranger signs up someone else's address with a display name that is a phishing line
    user = UserFactory(email="owner@example.com", name=HOSTILE_NAME)
    event = UserCreatedFactory(user_id=user.pk)

    # when
    welcome_email_send(event=event)

    # then: neither the name nor any part of it reaches the owner's mailbox
    [message] = mail.outbox
    for text in (message.subject, message.body, message.alternatives[0].content):
        assert "URGENT" not in text
        assert "evil.example" not in text
    assert Notification.objects.get().subject == "Confirm your e-mail address for Relay"


def test_welcome_email_links_to_the_configured_site_only(settings) -> None:
    settings.SITE_URL = "https://relay.example"
    event = UserCreatedFactory()

    welcome_email_send(event=event)

    [message] = mail.outbox
    links = _links(message.body) + _links(message.alternatives[0].content)
    assert links and all(link.startswith("https://relay.example/") for link in links)


def test_the_confirmation_token_is_made_at_the_send_and_stored_nowhere() -> None:
    # given
    user = UserFactory()
    event = UserCreatedFactory(user_id=user.pk)

    # when
    welcome_email_send(event=event)

    # then: the token is in the message and in no row (event payload, deliveries, notification)
    [message] = mail.outbox
    token = next(link for link in _links(message.body) if "/confirm-email/" in link).rstrip("/").rsplit("/", 1)[1]
    stored = [str(row.payload) for row in Event.objects.all()]
    stored += [str(row.last_error) + row.consumer for row in Delivery.objects.all()]
    stored += [f"{row.subject} {row.message_id}" for row in Notification.objects.all()]
    assert all(token not in text and token.split(":")[-1] not in text for text in stored)


def test_welcome_email_to_a_confirmed_address_carries_no_confirmation_link() -> None:
    user = UserFactory(email_confirmed_at=timezone.now())
    event = UserCreatedFactory(user_id=user.pk)

    welcome_email_send(event=event)

    [message] = mail.outbox
    assert message.subject == "Welcome to Relay"
    assert "/confirm-email/" not in message.body
    assert "/login/" in message.body


def test_password_reset_email_carries_a_working_reset_link_made_at_the_send(settings) -> None:
    # given
    settings.SITE_URL = "https://relay.example"
    user = UserFactory(email="ann@example.com", name=HOSTILE_NAME)
    event = UserPasswordResetRequested(user_id=user.pk)

    # when
    notification = password_reset_email_send(event=event)
    password_reset_email_send(event=event)

    # then: one message, one record, a Django reset token for this user, no signer-up text
    [message] = mail.outbox
    assert message.to == ["ann@example.com"]
    assert message.subject == "Reset your password on Relay"
    [reset] = [link for link in _links(message.body) if "/password-reset/" in link]
    assert reset.startswith("https://relay.example/password-reset/")
    uidb64, token = reset.rstrip("/").rsplit("/", 2)[1:]
    assert default_token_generator.check_token(user, token)
    assert urlsafe_base64_decode(uidb64).decode() == str(user.pk)
    assert f'href="{reset}"' in message.alternatives[0].content
    for text in (message.subject, message.body, message.alternatives[0].content):
        assert "URGENT" not in text
    assert notification is not None and notification.kind == Notification.Kind.PASSWORD_RESET
    assert token not in f"{notification.subject} {notification.message_id}"
    assert Notification.objects.count() == 1


@pytest.mark.parametrize("change", [{"is_active": False}, {"password": None}])
def test_password_reset_email_is_skipped_for_a_user_who_cannot_reset(change: dict[str, object]) -> None:
    user = UserFactory(**change)

    assert password_reset_email_send(event=UserPasswordResetRequested(user_id=user.pk)) is None
    assert mail.outbox == []


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


def test_admin_notice_reads_what_was_sent_at_each_send(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: while the first admin's notice is sent, another drain sends the second admin's
    settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
    event = UserCreatedFactory()
    send = notifications.services._send

    def send_while_another_drain_sends(message: Any, *, whom: str) -> None:
        send(message, whom=whom)
        if message.to == ["ops@example.com"]:
            Notification.objects.create(
                kind=Notification.Kind.ADMIN_NOTICE,
                user_id=event.user_id,
                event_id=event.event_id,
                recipient="founders@example.com",
                subject="sent by another drain",
            )

    monkeypatch.setattr("notifications.services._send", send_while_another_drain_sends)

    admin_notice_send(event=event)

    assert [message.to for message in mail.outbox] == [["ops@example.com"]]


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

    def __init__(self, code: int, *, refuse: str | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.code = code
        self.refuse = refuse  # refuse only this address (None: every one)
        self.accepted: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server: object, session: object, envelope: Any, address: str, options: object) -> str:
        if self.refuse is not None and address != self.refuse:
            envelope.rcpt_tos.append(address)
            return "250 OK"
        return f"{self.code} mailbox unavailable"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.accepted.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


@pytest.mark.parametrize("code, error", [(550, "MailRejectedError"), (451, "MailDeferredError")])
def test_refused_recipient_is_told_without_the_address(settings, code: int, error: str) -> None:
    # given: a real SMTP server that refuses the recipient
    from notifications.services import MailDeferredError, MailRejectedError

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
        with pytest.raises((MailRejectedError, MailDeferredError)) as raised:
            welcome_email_send(event=event)
    finally:
        server.controller.stop()

    # then: permanent for 5xx, retryable for 4xx, and the address is nowhere in the error
    assert type(raised.value).__name__ == error
    assert "refused@example.com" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert not Notification.objects.exists()


def test_one_refused_admin_address_never_keeps_the_others_from_their_notice(settings) -> None:
    # given: a real SMTP server that refuses only the first admin address, for good
    from notifications.services import MailRejectedError

    server = RefusingSMTP(550, refuse="gone@example.com")
    server.controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.port, "timeout": 5},
        }
    }
    settings.ADMIN_EMAILS = ["gone@example.com", "ops@example.com"]
    user = UserFactory(email="ann@example.com")
    event = UserCreatedFactory(user_id=user.pk)

    # when
    try:
        with pytest.raises(MailRejectedError) as raised:
            admin_notice_send(event=event)
    finally:
        server.controller.stop()

    # then: the other admin has the notice, and the error names the refused admin, not the user
    assert server.accepted == ["ops@example.com"]
    assert list(Notification.objects.values_list("recipient", flat=True)) == ["ops@example.com"]
    assert "gone@example.com" in str(raised.value)
    assert "ann@example.com" not in str(raised.value)


def test_every_copy_of_a_message_carries_the_same_message_id() -> None:
    from notifications.services import message_id

    event = UserCreatedFactory()

    welcome_email_send(event=event)
    Notification.objects.all().delete()  # as if the row was lost after the send
    welcome_email_send(event=event)

    ids = [message.extra_headers["Message-ID"] for message in mail.outbox]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert mail.outbox[0].message()["Message-ID"] == ids[0]
    user_email = mail.outbox[0].to[0]
    assert user_email not in ids[0]
    assert message_id(event_id=event.event_id, kind="welcome", recipient=user_email) == ids[0]
    assert message_id(event_id=event.event_id, kind="admin_notice", recipient=user_email) != ids[0]


def test_a_new_confirmation_link_is_sent_once_per_event_and_never_to_a_confirmed_address() -> None:
    # given
    user = UserFactory(email="ann@example.com", name=HOSTILE_NAME)
    event = UserEmailConfirmationRequested(user_id=user.pk)

    # when
    email_confirmation_send(event=event)
    email_confirmation_send(event=event)
    user.email_confirmed_at = timezone.now()
    user.save()
    skipped = email_confirmation_send(event=UserEmailConfirmationRequested(user_id=user.pk))

    # then
    [message] = mail.outbox
    assert message.subject == "Confirm your e-mail address for Relay"
    assert "URGENT" not in message.body + message.alternatives[0].content
    assert any("/confirm-email/" in link for link in _links(message.body))
    assert skipped is None
    assert Notification.objects.get().kind == Notification.Kind.EMAIL_CONFIRMATION


def test_a_recipients_too_fast_reply_is_that_recipients_deferral_not_our_sending_rate(monkeypatch) -> None:
    import smtplib

    from notifications import services
    from notifications.services import MailDeferredError, MailRateLimited

    def refused(message: object) -> None:
        raise smtplib.SMTPRecipientsRefused(
            {"someone@example.com": (450, b"4.2.1 The user you are trying to contact is receiving mail at a rate")}
        )

    monkeypatch.setattr(services, "_deliver", refused)
    with pytest.raises(MailDeferredError) as raised:
        services._send(object(), whom="the user")
    assert not isinstance(raised.value, MailRateLimited)
    assert "someone@example.com" not in str(raised.value)
