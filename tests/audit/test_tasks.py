from __future__ import annotations

import pytest

from audit.models import AuditEntry
from audit.tasks import record_user_created
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_record_user_created_task_records_the_entry() -> None:
    event = UserCreatedFactory()

    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()
    record_user_created.apply(kwargs={"event_id": str(event.event_id)}).get()

    assert AuditEntry.objects.get().event_id == event.event_id
