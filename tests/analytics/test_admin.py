from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from analytics.services import analytics_signups_track
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_analytics_admin_shows_signups_per_day(staff_client: Client) -> None:
    for day, count in ((3, 2), (4, 1)):
        for _ in range(count):
            analytics_signups_track(events=[UserCreatedFactory(occurred_at=datetime(2026, 11, day, 12, tzinfo=UTC))])

    response = staff_client.get(reverse("admin:analytics_analyticsevent_changelist"))

    assert response.status_code == 200
    assert [(row["day"].isoformat(), row["signups"]) for row in response.context["signups_per_day"]] == [
        ("2026-11-04", 1),
        ("2026-11-03", 2),
    ]
    assert "Signups per day" in response.text
