"""The notifications app's consumers: declared once, thin, call the services."""

from __future__ import annotations

from events.api import CircuitBreaker, consumer
from notifications.services import (
    admin_notice_send,
    email_confirmation_send,
    mail_session,
    password_reset_email_send,
    welcome_email_send,
)
from users.events import UserCreated, UserEmailConfirmationRequested, UserPasswordResetRequested
from users.signals import user_created, user_email_confirmation_requested, user_password_reset_requested

# The mail server refusing connections (or timing out) five times in a row is down: each consumer
# stops and probes once per EVENTS_CIRCUIT_PROBE_EVERY (30 s) until it answers (see the README).
SMTP_DOWN = CircuitBreaker(failures=5)


@consumer(user_created, batch_size=25, session=mail_session, breaker=SMTP_DOWN)
def send_welcome_email(event: UserCreated) -> None:
    """Send the welcome e-mail for a UserCreated event."""
    welcome_email_send(event=event)


@consumer(user_created, batch_size=25, session=mail_session, breaker=SMTP_DOWN)
def notify_admins(event: UserCreated) -> None:
    """Send the admins the notice of a UserCreated event."""
    admin_notice_send(event=event)


@consumer(user_password_reset_requested, batch_size=25, session=mail_session, breaker=SMTP_DOWN)
def send_password_reset_email(event: UserPasswordResetRequested) -> None:
    """Send the password reset link for a UserPasswordResetRequested event."""
    password_reset_email_send(event=event)


@consumer(user_email_confirmation_requested, batch_size=25, session=mail_session, breaker=SMTP_DOWN)
def send_email_confirmation(event: UserEmailConfirmationRequested) -> None:
    """Send a new confirmation link for a UserEmailConfirmationRequested event."""
    email_confirmation_send(event=event)
