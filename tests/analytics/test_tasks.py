from __future__ import annotations

import pytest

from analytics.models import AnalyticsEvent
from analytics.tasks import track_signup
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_track_signup_tracks_each_owed_signup_once() -> None:
    event = UserCreatedFactory()

    track_signup.task.apply().get()
    track_signup.task.apply().get()

    assert AnalyticsEvent.objects.get().event_id == event.event_id
