from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEntry
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_an_event_is_audited_once_per_action() -> None:
    event = UserCreatedFactory()
    fields = {
        "event_id": event.event_id,
        "action": AuditEntry.Action.USER_CREATED,
        "target_user_id": event.user_id,
        "source": "service",
        "occurred_at": timezone.now(),
    }
    AuditEntry.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(**fields)
