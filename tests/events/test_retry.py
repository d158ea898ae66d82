from __future__ import annotations

import psycopg.errors
import pytest
from django.db import DataError, IntegrityError, InternalError, OperationalError, connection

from events.api import get_consumer
from events.models import Delivery
from events.retry import DatabaseUnavailable, database_unavailable_raised, is_database_unavailable, is_transient
from events.tasks import sweep_deliveries
from tests.factories import UserCreatedFactory

AUDIT = "audit.record_user_created"


def wrapped(django_error: type[Exception], driver_error: Exception) -> Exception:
    """The error as Django raises it: its own class, the driver's error as the cause."""
    try:
        raise django_error(str(driver_error)) from driver_error
    except django_error as error:
        return error


@pytest.mark.parametrize(
    "driver_error",
    [
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is in recovery mode"),
        psycopg.errors.ConnectionFailure("connection failure"),
    ],
    ids=["read-only", "admin-shutdown", "in-recovery", "connection-failure"],
)
def test_a_read_only_or_recovering_database_is_unavailable_and_transient(driver_error: Exception) -> None:
    error = wrapped(InternalError, driver_error)

    assert is_database_unavailable(error)
    assert is_transient(error)


def test_a_wrong_query_or_a_broken_constraint_is_not_unavailability() -> None:
    assert not is_database_unavailable(wrapped(IntegrityError, psycopg.errors.UniqueViolation("duplicate key")))
    assert not is_database_unavailable(wrapped(DataError, psycopg.errors.NumericValueOutOfRange("out of range")))
    assert not is_database_unavailable(wrapped(InternalError, psycopg.errors.InFailedSqlTransaction("aborted")))
    assert is_database_unavailable(OperationalError("the database is gone"))


@pytest.mark.django_db(transaction=True)
def test_an_unavailable_database_closes_the_connection_that_saw_it(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(connection, "close", lambda: closed.append(True))

    with pytest.raises(DatabaseUnavailable, match="SQLSTATE 25006"), database_unavailable_raised():
        raise wrapped(InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only"))
    with pytest.raises(IntegrityError), database_unavailable_raised():
        raise wrapped(IntegrityError, psycopg.errors.UniqueViolation("duplicate key"))

    assert closed == [True]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: a read-only session is a server's")
@pytest.mark.django_db(transaction=True)
def test_a_drain_on_a_read_only_connection_is_retried_on_a_new_one() -> None:
    # given: the worker's connection is read-only (opened while the database was, or on a standby)
    UserCreatedFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    # when: its doorbell rings (eager: Celery's retry runs it again at once)
    get_consumer(AUDIT).task.apply()

    # then: the retry ran on a new connection, which could write
    assert Delivery.objects.get(consumer=AUDIT).status == Delivery.Status.DONE
    with connection.cursor() as cursor:
        cursor.execute("SHOW transaction_read_only")
        assert cursor.fetchone() == ("off",)


@pytest.mark.django_db
def test_a_sweep_with_the_database_unavailable_waits_for_the_next_pass(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def read_only() -> list[str]:
        raise wrapped(InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only"))

    monkeypatch.setattr("events.tasks.sweep", read_only)
    monkeypatch.setattr(connection, "close", lambda: None)

    assert sweep_deliveries() == 0
    assert "Sweep: database unavailable (DatabaseUnavailable)" in caplog.text
