"""Receivers of the analytics app: each rings its consumer's doorbell and returns."""

from __future__ import annotations

from typing import Any

from analytics.tasks import track_signup as track_signup_task
from users.events import UserCreated


def track_signup(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the analytics task: a signup is owed tracking."""
    track_signup_task.ring()
