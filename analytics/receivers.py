"""Receivers of the analytics app: each enqueues one task and returns."""

from __future__ import annotations

from typing import Any

from analytics.tasks import track_signup as track_signup_task
from users.events import UserCreated


def track_signup(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the tracking of a signup."""
    track_signup_task.delay(event_id=str(event.event_id))
