from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.models import ContactSync
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_a_contact_is_recorded_synced_once_per_event() -> None:
    event = UserCreatedFactory()
    ContactSync.objects.create(event_id=event.event_id, user_id=event.user_id, synced_at=timezone.now())

    with pytest.raises(IntegrityError), transaction.atomic():
        ContactSync.objects.create(event_id=event.event_id, user_id=event.user_id, synced_at=timezone.now())
