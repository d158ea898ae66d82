"""Receivers of the notifications app: each enqueues one task and returns."""

from __future__ import annotations

from typing import Any

from notifications.tasks import notify_admins as notify_admins_task
from notifications.tasks import send_welcome_email as send_welcome_email_task
from users.events import UserCreated


def send_welcome_email(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the welcome e-mail to the new user."""
    send_welcome_email_task.delay(event_id=str(event.event_id))


def notify_admins(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the new-signup notice to the admins."""
    notify_admins_task.delay(event_id=str(event.event_id))
