"""Tasks of the analytics app: load the event, call a service."""

from __future__ import annotations

from celery import shared_task

from analytics.services import analytics_signup_track
from events.consumers import ConsumerTask
from events.retry import RETRY_POLICY
from events.services import event_load
from users.events import UserCreated


@shared_task(base=ConsumerTask, consumer="analytics.track_signup", atomic=True, **RETRY_POLICY)
def track_signup(event_id: str) -> None:
    """Track the signup of a UserCreated event."""
    analytics_signup_track(event=event_load(event_id=event_id, event_class=UserCreated))
