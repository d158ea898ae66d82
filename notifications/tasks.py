"""The notifications app's consumers: declared once, thin, call the services."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from events.api import CircuitBreaker, consumer, rate_setting
from notifications.services import (
    admin_notice_send,
    email_confirmation_send,
    mail_session,
    password_reset_email_send,
    welcome_email_send,
)
from users.events import UserCreated, UserEmailConfirmationRequested, UserPasswordResetRequested
from users.signals import user_created, user_email_confirmation_requested, user_password_reset_requested

# How long each mail stays worth sending (README, "Deadlines"): a mail that carries a link is
# worth sending while the link would still work had it gone out at once; an admin notice days late
# is noise (the admin list and the audit log say who signed up).
CONFIRMATION_DEADLINE = timedelta(seconds=settings.EMAIL_CONFIRMATION_TIMEOUT)
PASSWORD_RESET_DEADLINE = timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
ADMIN_NOTICE_DEADLINE = timedelta(days=1)
# One mail provider account, one sending rate: every e-mail the project sends draws on it.
EMAIL_RATE = {"rate": rate_setting("EMAIL_RATE_LIMIT"), "rate_bucket": "email"}

# The mail server refusing connections (or timing out) five times in a row is down: each consumer
# stops and probes once per EVENTS_CIRCUIT_PROBE_EVERY (30 s) until it answers (see the README).
SMTP_DOWN = CircuitBreaker(failures=5)


@consumer(
    user_created, batch_size=25, session=mail_session, deadline=CONFIRMATION_DEADLINE, breaker=SMTP_DOWN, **EMAIL_RATE
)
def send_welcome_email(event: UserCreated) -> None:
    """Send the welcome e-mail for a UserCreated event."""
    welcome_email_send(event=event)


@consumer(
    user_created, batch_size=25, session=mail_session, deadline=ADMIN_NOTICE_DEADLINE, breaker=SMTP_DOWN, **EMAIL_RATE
)
def notify_admins(event: UserCreated) -> None:
    """Send the admins the notice of a UserCreated event."""
    admin_notice_send(event=event)


@consumer(
    user_password_reset_requested,
    batch_size=25,
    session=mail_session,
    deadline=PASSWORD_RESET_DEADLINE,
    breaker=SMTP_DOWN,
    **EMAIL_RATE,
)
def send_password_reset_email(event: UserPasswordResetRequested) -> None:
    """Send the password reset link for a UserPasswordResetRequested event."""
    password_reset_email_send(event=event)


@consumer(
    user_email_confirmation_requested,
    batch_size=25,
    session=mail_session,
    deadline=CONFIRMATION_DEADLINE,
    breaker=SMTP_DOWN,
    **EMAIL_RATE,
)
def send_email_confirmation(event: UserEmailConfirmationRequested) -> None:
    """Send a new confirmation link for a UserEmailConfirmationRequested event."""
    email_confirmation_send(event=event)
