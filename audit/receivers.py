"""Receivers of the audit app: each enqueues one task and returns."""

from __future__ import annotations

from typing import Any

from audit.tasks import record_user_created as record_user_created_task
from users.events import UserCreated


def record_user_created(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the audit entry for a new user."""
    record_user_created_task.delay(event_id=str(event.event_id))
