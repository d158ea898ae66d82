from __future__ import annotations

import pytest

from analytics.models import AnalyticsEvent
from analytics.tasks import track_signup
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_track_signup_task_tracks_the_signup() -> None:
    event = UserCreatedFactory()

    track_signup.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert AnalyticsEvent.objects.get().event_id == event.event_id
