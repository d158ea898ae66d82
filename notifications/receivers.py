"""Receivers of the notifications app: each rings its consumer's doorbell and returns."""

from __future__ import annotations

from typing import Any

from notifications.tasks import notify_admins as notify_admins_task
from notifications.tasks import send_welcome_email as send_welcome_email_task
from users.events import UserCreated


def send_welcome_email(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the welcome e-mail's task: a new user is owed one."""
    send_welcome_email_task.ring()


def notify_admins(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the admin notice's task: the admins are owed word of a new user."""
    notify_admins_task.ring()
