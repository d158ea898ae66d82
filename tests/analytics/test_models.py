from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.models import AnalyticsEvent
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_a_signup_is_tracked_once_per_event() -> None:
    event = UserCreatedFactory()
    fields = {
        "event_id": event.event_id,
        "name": AnalyticsEvent.Name.USER_SIGNED_UP,
        "user_id": event.user_id,
        "occurred_at": timezone.now(),
    }
    AnalyticsEvent.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        AnalyticsEvent.objects.create(**fields)
