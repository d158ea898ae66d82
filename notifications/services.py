"""The side effects of the notifications app: e-mails, each recorded once sent."""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from notifications.models import Notification
from users.events import UserCreated
from users.models import User

logger = logging.getLogger(__name__)


def _render_email(*, template: str, context: dict[str, Any], to: str) -> EmailMultiAlternatives:
    """Build a text and HTML e-mail from notifications/email/<template>{_subject.txt,.txt,.html}."""
    context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"notifications/email/{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"notifications/email/{template}.txt", context),
        to=[to],
    )
    message.attach_alternative(render_to_string(f"notifications/email/{template}.html", context), "text/html")
    return message


class MailRejectedError(Exception):
    """The mail server refused the message for good (a 5xx answer): retrying cannot help."""


def _send(message: EmailMultiAlternatives, *, user: User) -> None:
    """Send message; a permanent refusal becomes MailRejectedError, told without the address."""
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        codes = sorted({code for code, _reason in error.recipients.values()})
        if all(code >= 500 for code in codes):
            # `from None`: the original names the address, and errors end up in logs.
            raise MailRejectedError(f"mail server refused the recipient of user {user.pk} ({codes})") from None
        raise smtplib.SMTPException(f"mail server deferred the recipient of user {user.pk} ({codes})") from None
    except smtplib.SMTPResponseException as error:
        if error.smtp_code >= 500:
            raise MailRejectedError(
                f"mail server rejected the message for user {user.pk} ({error.smtp_code})"
            ) from None
        raise


def _send_once(
    *, event: UserCreated, user: User, kind: Notification.Kind, message: EmailMultiAlternatives
) -> Notification:
    # Exactly-once ends here: if the process dies after the server accepted the message and
    # before this row commits, the retry sends it again. The window is this one INSERT.
    _send(message, user=user)
    return Notification.objects.create(
        kind=kind, user=user, event_id=event.event_id, recipient=message.to[0], subject=message.subject
    )


def welcome_email_send(*, event: UserCreated) -> Notification | None:
    """Send the new user their welcome e-mail, unless it was already sent for this event."""
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("Welcome e-mail skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return None
    sent = Notification.objects.filter(event_id=event.event_id, kind=Notification.Kind.WELCOME).first()
    if sent is not None:
        return sent
    message = _render_email(template="welcome", context={"user": user}, to=user.email)
    return _send_once(event=event, user=user, kind=Notification.Kind.WELCOME, message=message)


def admin_notice_send(*, event: UserCreated) -> list[Notification]:
    """Send each address in ADMIN_EMAILS the notice of a new user, skipping those already sent."""
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("Admin notice skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return []
    already_sent = set(
        Notification.objects.filter(event_id=event.event_id, kind=Notification.Kind.ADMIN_NOTICE).values_list(
            "recipient", flat=True
        )
    )
    context = {"user": user, "event": event}
    return [
        _send_once(
            event=event,
            user=user,
            kind=Notification.Kind.ADMIN_NOTICE,
            message=_render_email(template="admin_notice", context=context, to=recipient),
        )
        for recipient in settings.ADMIN_EMAILS
        if recipient not in already_sent
    ]
