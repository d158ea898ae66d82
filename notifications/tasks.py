"""Tasks of the notifications app: load the event, call a service."""

from __future__ import annotations

from celery import shared_task

from events.consumers import ConsumerTask
from events.retry import RETRY_POLICY
from events.services import event_load
from notifications.services import admin_notice_send, welcome_email_send
from users.events import UserCreated


@shared_task(base=ConsumerTask, consumer="notifications.send_welcome_email", **RETRY_POLICY)
def send_welcome_email(event_id: str) -> None:
    """Send the welcome e-mail for a UserCreated event."""
    welcome_email_send(event=event_load(event_id=event_id, event_class=UserCreated))


@shared_task(base=ConsumerTask, consumer="notifications.notify_admins", **RETRY_POLICY)
def notify_admins(event_id: str) -> None:
    """Send the admins the notice of a UserCreated event."""
    admin_notice_send(event=event_load(event_id=event_id, event_class=UserCreated))
