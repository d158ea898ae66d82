from __future__ import annotations

import pytest

from audit.models import AuditEntry
from audit.tasks import record_user_created
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_record_user_created_records_each_owed_entry_once() -> None:
    event = UserCreatedFactory()

    record_user_created.task.apply().get()
    record_user_created.task.apply().get()

    assert AuditEntry.objects.get().event_id == event.event_id
