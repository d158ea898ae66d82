"""The side effect of the analytics app: one tracked event per domain event."""

from __future__ import annotations

from analytics.models import AnalyticsEvent
from users.events import UserCreated
from users.models import User


def analytics_signups_track(*, events: list[UserCreated]) -> None:
    """Track a user_signed_up event for each domain event in one insert, skipping users gone and events tracked."""
    existing = set(User.objects.filter(pk__in=[event.user_id for event in events]).values_list("pk", flat=True))
    AnalyticsEvent.objects.bulk_create(
        [
            AnalyticsEvent(
                event_id=event.event_id,
                name=AnalyticsEvent.Name.USER_SIGNED_UP,
                user_id=event.user_id,
                occurred_at=event.occurred_at,
                properties={"source": event.source.value, "invited_by_staff": event.actor_id is not None},
            )
            for event in events
            if event.user_id in existing
        ],
        ignore_conflicts=True,  # the unique (event_id, name): a redelivered event adds nothing
    )
