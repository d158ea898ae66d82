from __future__ import annotations

import pytest

from analytics.models import AnalyticsEvent
from analytics.services import analytics_signups_track
from tests.factories import UserCreatedFactory, UserFactory
from users.events import UserCreationSource

pytestmark = pytest.mark.django_db


def test_signup_is_tracked_with_its_properties() -> None:
    event = UserCreatedFactory(source=UserCreationSource.SIGNUP_FORM)

    analytics_signups_track(events=[event])

    tracked = AnalyticsEvent.objects.get()
    assert (tracked.name, tracked.user_id, tracked.event_id, tracked.occurred_at) == (
        "user_signed_up",
        event.user_id,
        event.event_id,
        event.occurred_at,
    )
    assert tracked.properties == {"source": "signup_form", "invited_by_staff": False}


def test_redelivered_event_tracks_one_signup() -> None:
    event = UserCreatedFactory()

    analytics_signups_track(events=[event])
    analytics_signups_track(events=[event, UserCreatedFactory()])

    assert AnalyticsEvent.objects.filter(event_id=event.event_id).count() == 1
    assert AnalyticsEvent.objects.count() == 2


def test_signup_of_a_deleted_user_is_not_tracked() -> None:
    user = UserFactory()
    event = UserCreatedFactory(user_id=user.pk)
    user.delete()

    analytics_signups_track(events=[event, UserCreatedFactory()])

    assert not AnalyticsEvent.objects.filter(event_id=event.event_id).exists()
    assert AnalyticsEvent.objects.count() == 1
