"""The notifications app's consumers: declared once, thin, call the services."""

from __future__ import annotations

from events.api import consumer
from notifications.services import admin_notice_send, mail_session, welcome_email_send
from users.events import UserCreated
from users.signals import user_created


@consumer(user_created, batch_size=25, session=mail_session)
def send_welcome_email(event: UserCreated) -> None:
    """Send the welcome e-mail for a UserCreated event."""
    welcome_email_send(event=event)


@consumer(user_created, batch_size=25, session=mail_session)
def notify_admins(event: UserCreated) -> None:
    """Send the admins the notice of a UserCreated event."""
    admin_notice_send(event=event)
