"""The side effects of the notifications app: e-mails, each recorded once sent, each with a stable Message-ID."""

from __future__ import annotations

import logging
import re
import smtplib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from events.api import PermanentError, RateLimited, TransientError, fence
from notifications.models import Notification
from users.events import UserCreated, UserEmailConfirmationRequested, UserPasswordResetRequested
from users.models import User
from users.tokens import email_confirmation_token_make

logger = logging.getLogger(__name__)

# Message-IDs are uuid5 names in this namespace: derived, so a resend carries the same one.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f0b2a52-8d4e-4b8e-9a51-2f8c0f1d7c3e")


class MailRejectedError(PermanentError):
    """The mail server refused the message for good (a 5xx answer): retrying cannot help."""


class MailDeferredError(TransientError):
    """The mail server refused the message for now (a 4xx answer): try again later."""


class MailRateLimited(MailDeferredError, RateLimited):
    """The mail server refused for our sending rate (421/45x "too many", "rate", "throttled"): every sender slows.

    Its message names no recipient: it goes to the logs and the ledger as it is.
    """

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.reason = f"SMTP {code}"


# The replies by which a mail server says slow down (RFC 5321 4xx codes; the text says why).
RATE_LIMIT_CODES = frozenset({421, 450, 451, 452, 454})
RATE_LIMIT_WORDS = re.compile(r"too many|rate|throttl|limit", re.IGNORECASE)


def _rate_limited(code: int, reply: bytes | str) -> bool:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return code in RATE_LIMIT_CODES and RATE_LIMIT_WORDS.search(text) is not None


# The mail server connection a batch of e-mails shares (see mail_session).
_mailer: ContextVar[BaseEmailBackend | None] = ContextVar("notifications_mailer", default=None)


@contextmanager
def mail_session() -> Iterator[None]:
    """Send the e-mails of the block over one connection to the mail server."""
    mailer = mailers.default
    with suppress(OSError, smtplib.SMTPException):
        # A server that is down now fails each message on its own, each retried on its row.
        mailer.open()
    token = _mailer.set(mailer)
    try:
        yield
    finally:
        _mailer.reset(token)
        with suppress(OSError, smtplib.SMTPException):
            mailer.close()


def _deliver(message: EmailMultiAlternatives) -> None:
    mailer = _mailer.get()
    if mailer is None:
        message.send()
        return
    try:
        mailer.send_messages([message])
    except OSError as error:
        # A refusal (an SMTPResponseException, itself an OSError) leaves the connection usable:
        # smtplib resets the transaction. A broken connection is replaced for the next message.
        if isinstance(error, smtplib.SMTPServerDisconnected) or not isinstance(error, smtplib.SMTPException):
            with suppress(OSError):
                mailer.close()
                mailer.open()
        raise


def message_id(*, event_id: uuid.UUID, kind: str, recipient: str) -> str:
    """Return the Message-ID of one e-mail: the same for every resend, so a mail client drops duplicates."""
    name = uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{event_id}/{kind}/{recipient.lower()}")
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<{name}@{domain}>"


def _render_email(*, template: str, context: dict[str, Any], to: str, msgid: str) -> EmailMultiAlternatives:
    """Build a text and HTML e-mail from notifications/email/<template>{_subject.txt,.txt,.html}."""
    context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"notifications/email/{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"notifications/email/{template}.txt", context),
        to=[to],
        headers={"Message-ID": msgid},
    )
    message.attach_alternative(render_to_string(f"notifications/email/{template}.html", context), "text/html")
    return message


def _send(message: EmailMultiAlternatives, *, whom: str) -> None:
    """Send message; a refusal becomes MailRejectedError or MailDeferredError naming whom, not the address."""
    try:
        _deliver(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = sorted({code for code, _reason in error.recipients.values()})
        # `from None`: the original names the address, and errors end up in logs and the ledger.
        if all(code >= 500 for code in codes):
            raise MailRejectedError(f"mail server refused {whom} ({codes})") from None
        # A recipient's 45x (its mailbox receiving too fast, greylisting) is about that recipient,
        # not our sending rate: the delivery retries on its own schedule, the others go on.
        raise MailDeferredError(f"mail server deferred {whom} ({codes})") from None
    except smtplib.SMTPDataError as error:
        if error.smtp_code >= 500:
            raise MailRejectedError(f"mail server rejected the message to {whom} ({error.smtp_code})") from None
        if _rate_limited(error.smtp_code, error.smtp_error):
            raise MailRateLimited(f"mail server slowed us down ({error.smtp_code})", code=error.smtp_code) from None
        raise MailDeferredError(f"mail server deferred the message to {whom} ({error.smtp_code})") from None
    except smtplib.SMTPResponseException as error:
        if _rate_limited(error.smtp_code, error.smtp_error):
            raise MailRateLimited(f"mail server slowed us down ({error.smtp_code})", code=error.smtp_code) from None
        # Our side (credentials, sender, greeting) or the server is wrong, not the recipient: fixable, so retried.
        raise MailDeferredError(f"mail server refused to send to {whom} ({error.smtp_code})") from None


def _site_link(path: str) -> str:
    """Return the absolute link to path on the site: SITE_URL, never a request's Host header."""
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def _send_and_record(
    *,
    event: UserCreated | UserPasswordResetRequested | UserEmailConfirmationRequested,
    user: User,
    kind: Notification.Kind,
    message: EmailMultiAlternatives,
    whom: str,
) -> Notification:
    # The row is written right after the server accepts the message: a crash in between resends
    # it, with the same Message-ID.
    _send(message, whom=whom)
    notification = Notification(
        event_id=event.event_id,
        kind=kind,
        recipient=message.to[0],
        user=user,
        subject=message.subject,
        message_id=message.extra_headers["Message-ID"],
    )
    # One INSERT … ON CONFLICT DO NOTHING: a row already there (a resend) is the same fact.
    Notification.objects.bulk_create([notification], ignore_conflicts=True)
    return notification


def _confirmation_context(*, user: User) -> dict[str, Any]:
    """Return the confirmation link for an unconfirmed user, made now, and how long it works."""
    confirm_url = None
    if user.email_confirmed_at is None:
        token = email_confirmation_token_make(user=user)
        confirm_url = _site_link(reverse("users:email_confirm", kwargs={"token": token}))
    return {"confirm_url": confirm_url, "valid_days": max(1, settings.EMAIL_CONFIRMATION_TIMEOUT // 86400)}


def welcome_email_send(*, event: UserCreated) -> Notification | None:
    """Send the new user their welcome e-mail, unless it was already sent for this event."""
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("Welcome e-mail skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return None
    sent = Notification.objects.filter(event_id=event.event_id, kind=Notification.Kind.WELCOME).first()
    if sent is not None:
        return sent
    kind = Notification.Kind.WELCOME
    msgid = message_id(event_id=event.event_id, kind=kind, recipient=user.email)
    # The link is made now, at the send: a token is never in the event, the task or a row. The
    # templates carry nothing the signer-up chose (the display name could be anyone's words, and
    # the address anyone's mailbox), only the address itself: README, "E-mail confirmation".
    context = {
        **_confirmation_context(user=user),
        "email": user.email,
        "login_url": _site_link(reverse("users:login")),
        "password_reset_url": _site_link(reverse("users:password_reset")),
    }
    message = _render_email(template="welcome", context=context, to=user.email, msgid=msgid)
    return _send_and_record(event=event, user=user, kind=kind, message=message, whom=f"the address of user {user.pk}")


def password_reset_email_send(*, event: UserPasswordResetRequested) -> Notification | None:
    """Send the user a password reset link made now, unless it was already sent for this event."""
    user = User.objects.filter(pk=event.user_id).first()
    if user is None or not user.is_active or not user.has_usable_password():
        logger.info("Password reset e-mail skipped: user %s cannot reset (event %s)", event.user_id, event.event_id)
        return None
    kind = Notification.Kind.PASSWORD_RESET
    sent = Notification.objects.filter(event_id=event.event_id, kind=kind).first()
    if sent is not None:
        return sent
    msgid = message_id(event_id=event.event_id, kind=kind, recipient=user.email)
    # Django's own token: it stops working once the password changes or the user signs in, and after
    # PASSWORD_RESET_TIMEOUT. Made at the send, it lives only in the message.
    path = reverse(
        "users:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    context = {
        "email": user.email,
        "reset_url": _site_link(path),
        "valid_minutes": max(1, settings.PASSWORD_RESET_TIMEOUT // 60),
    }
    message = _render_email(template="password_reset", context=context, to=user.email, msgid=msgid)
    return _send_and_record(event=event, user=user, kind=kind, message=message, whom=f"the address of user {user.pk}")


def email_confirmation_send(*, event: UserEmailConfirmationRequested) -> Notification | None:
    """Send the user a new confirmation link made now, unless it was sent for this event or the address is confirmed."""
    user = User.objects.filter(pk=event.user_id, is_active=True).first()
    if user is None or user.email_confirmed_at is not None:
        logger.info("Confirmation link skipped: user %s is gone or confirmed (event %s)", event.user_id, event.event_id)
        return None
    kind = Notification.Kind.EMAIL_CONFIRMATION
    sent = Notification.objects.filter(event_id=event.event_id, kind=kind).first()
    if sent is not None:
        return sent
    msgid = message_id(event_id=event.event_id, kind=kind, recipient=user.email)
    context = {
        **_confirmation_context(user=user),
        "email": user.email,
        "password_reset_url": _site_link(reverse("users:password_reset")),
    }
    message = _render_email(template="email_confirmation", context=context, to=user.email, msgid=msgid)
    return _send_and_record(event=event, user=user, kind=kind, message=message, whom=f"the address of user {user.pk}")


def admin_notice_send(*, event: UserCreated) -> list[Notification]:
    """Send each address in ADMIN_EMAILS the notice of a new user, each on its own.

    One refused or deferred address never keeps the others from their notice. Afterwards a
    deferral raises MailDeferredError (a retry sends only what is missing), else a refusal raises
    MailRejectedError naming the refused admin addresses (settings, not users' data).
    """
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("Admin notice skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return []
    kind = Notification.Kind.ADMIN_NOTICE
    context = {"user": user, "event": event}
    sent: list[Notification] = []
    refused: list[str] = []
    deferred: list[str] = []
    for recipient in settings.ADMIN_EMAILS:
        # Each send only while this drain still holds the delivery, and only if no drain sent it
        # meanwhile: read at the send, not before the loop (a slow server makes the loop long).
        fence()
        if Notification.objects.filter(event_id=event.event_id, kind=kind, recipient=recipient).exists():
            continue
        msgid = message_id(event_id=event.event_id, kind=kind, recipient=recipient)
        message = _render_email(template="admin_notice", context=context, to=recipient, msgid=msgid)
        try:
            sent.append(_send_and_record(event=event, user=user, kind=kind, message=message, whom=f"admin {recipient}"))
        except MailRateLimited:
            # Slow down means every sender: the other admins' notices wait too (a retry sends what is missing).
            raise
        except MailRejectedError:
            refused.append(recipient)
        except (MailDeferredError, smtplib.SMTPException, OSError):
            deferred.append(recipient)
    if deferred:
        raise MailDeferredError(
            f"admin notice not delivered to {', '.join(deferred)} (try again)"
            + (f"; refused for good by {', '.join(refused)}" if refused else "")
        )
    if refused:
        raise MailRejectedError(f"mail server refused the admin notice to {', '.join(refused)}")
    return sent
