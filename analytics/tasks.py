"""The analytics app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from analytics.services import analytics_signup_track
from events.api import consumer
from users.events import UserCreated
from users.signals import user_created


@consumer(user_created, atomic=True, batch_size=100)
def track_signup(event: UserCreated) -> None:
    """Track the signup of a UserCreated event."""
    analytics_signup_track(event=event)
