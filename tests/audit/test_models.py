from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
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


@pytest.fixture
def application_role() -> Iterator[dict[str, Any]]:
    """A login role that does not own the audit table but may read and write it, as the README advises."""
    # The cluster is shared (other databases, other runs): a name of its own, dropped afterwards.
    name = f"audit_app_{uuid4().hex[:12]}"
    password = uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", [password])
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON audit_auditentry TO {name}")
        cursor.execute(f"GRANT USAGE ON SEQUENCE audit_auditentry_id_seq TO {name}")
    db = connection.settings_dict
    yield {
        "name": name,
        "conninfo": {
            "host": db["HOST"] or "127.0.0.1",
            "port": db["PORT"] or 5432,
            "dbname": db["NAME"],
            "user": name,
            "password": password,
            # As the test settings connect: the guard lifted from the session's start, and SET again below.
            "options": "-c audit.allow_erase=on",
            "autocommit": True,
        },
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(f"DROP OWNED BY {name}")
        cursor.execute(f"DROP ROLE {name}")


def _insert_entry(cursor: Any) -> None:
    cursor.execute(
        "INSERT INTO audit_auditentry (action, target_user_id, source, event_id, occurred_at, recorded_at, details)"
        " VALUES ('user.created', 1, 'service', %s, now(), now(), '{}')",
        [uuid4()],
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger is on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET source = 'forged'",
        "DELETE FROM audit_auditentry",
        "TRUNCATE audit_auditentry",
    ],
)
def test_a_role_that_does_not_own_the_log_cannot_lift_the_guard(
    application_role: dict[str, Any], statement: str
) -> None:
    # given: an entry, and the application's role connected on its own, the guard "lifted"
    entry = AuditEntryFactory()
    with psycopg.connect(**application_role["conninfo"]) as app, app.cursor() as cursor:
        cursor.execute("SET audit.allow_erase = on")
        cursor.execute("SELECT current_user, current_setting('audit.allow_erase')")
        assert cursor.fetchone() == (application_role["name"], "on")

        # when / then: refused all the same, while it may still append
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            cursor.execute(statement)
        _insert_entry(cursor)

    entry.refresh_from_db()
    assert entry.source == "service"
    assert AuditEntry.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger is on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_role_that_may_create_functions_cannot_shadow_the_guard_s_own(application_role: dict[str, Any]) -> None:
    # given: the application's role may create in public (as on clusters older than PostgreSQL 15)
    # and puts its own pg_has_role, saying yes to all, ahead of pg_catalog's
    entry = AuditEntryFactory()
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT CREATE ON SCHEMA public TO {application_role['name']}")
    with psycopg.connect(**application_role["conninfo"]) as app, app.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'"
        )
        cursor.execute("SET search_path = public, pg_catalog")

        # when / then
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            cursor.execute("DELETE FROM audit_auditentry")

    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only trigger is on PostgreSQL only")
def test_the_owner_may_still_lift_the_guard() -> None:
    # given: the test settings connect as the table's owner with audit.allow_erase = on
    AuditEntryFactory()

    # when: as the test runner empties tables between tests
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry")

    # then
    assert not AuditEntry.objects.exists()
