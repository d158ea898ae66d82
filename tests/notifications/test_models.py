from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from notifications.models import Notification
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_a_message_is_recorded_once_per_event_kind_and_recipient() -> None:
    event = UserCreatedFactory()
    fields = {
        "event_id": event.event_id,
        "kind": Notification.Kind.ADMIN_NOTICE,
        "recipient": "ops@example.com",
        "user_id": event.user_id,
        "subject": "New signup",
    }
    Notification.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(**fields)
