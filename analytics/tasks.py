"""The analytics app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from analytics.services import analytics_signups_track
from events.api import consumer
from users.events import UserCreated
from users.signals import user_created


@consumer(user_created, atomic=True, many=True, batch_size=100)
def track_signup(events: list[UserCreated]) -> None:
    """Track the signups of UserCreated events."""
    analytics_signups_track(events=events)
