from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditEntry
from tests.factories import AuditEntryFactory, UserCreatedFactory

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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger is on PostgreSQL only")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET source = 'forged'",
        "DELETE FROM audit_auditentry",
        "TRUNCATE audit_auditentry",
        "TRUNCATE audit_auditentry CASCADE",
    ],
)
def test_the_database_refuses_to_change_or_erase_the_log(statement: str) -> None:
    entry = AuditEntryFactory()

    with transaction.atomic():
        with connection.cursor() as cursor:
            # As in production: no session lifts the guard (the test settings lift it for flushing).
            cursor.execute("SET LOCAL audit.allow_erase = 'off'")
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)

    entry.refresh_from_db()
    assert entry.source != "forged"
