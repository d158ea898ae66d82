from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
from django.db import InterfaceError, OperationalError
from django.db.utils import ConnectionHandler
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from devtools.redis_server import free_port

# The message a PostgreSQL driver gives: it names the host and the user, which must not reach a log.
LEAKY_MESSAGE = (
    'connection to server at "db.internal" (10.0.0.5), port 5432 failed: '
    'password authentication failed for user "relay_owner"'
)


def database_down(request: HttpRequest) -> HttpResponse:
    # As Django raises it: its own class, the driver's error as the cause (no SQLSTATE: no connection).
    raise OperationalError(LEAKY_MESSAGE) from psycopg.OperationalError(LEAKY_MESSAGE)


def deadlock(request: HttpRequest) -> HttpResponse:
    raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected("deadlock detected")


def sqlite_error(request: HttpRequest) -> HttpResponse:
    message = request.GET["message"]
    raise OperationalError(message) from sqlite3.OperationalError(message)


def connection_gone(request: HttpRequest) -> HttpResponse:
    raise InterfaceError("connection already closed")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("an unexpected bug")


def unreachable_postgres(request: HttpRequest) -> HttpResponse:
    """Query a PostgreSQL server on a port nothing listens on, through Django's own database layer."""
    databases = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "relay",
                "USER": "relay_owner",
                "PASSWORD": "not-a-real-secret",
                "HOST": "127.0.0.1",
                "PORT": str(free_port()),
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    try:
        with databases["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        databases.close_all()
    return HttpResponse("unreachable")


urlpatterns = [
    path("database-down/", database_down, name="database-down"),
    path("deadlock/", deadlock),
    path("sqlite-error/", sqlite_error),
    path("connection-gone/", connection_gone),
    path("broken/", broken),
    path("unreachable-postgres/", unreachable_postgres),
]

pytestmark = pytest.mark.urls(__name__)


def test_unreachable_database_answers_503_with_a_page_asking_to_come_back(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # when
    with caplog.at_level(logging.ERROR, logger="config.middleware"):
        response = client.get("/database-down/")

    # then
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "back in a moment" in response.text
    assert "try again in a minute" in response.text
    assert "Server Error" not in response.text
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "django.db.utils.OperationalError" in logged
    assert "database-down" in logged
    for secret in ("db.internal", "10.0.0.5", "relay_owner"):
        assert secret not in logged


def test_a_connection_lost_mid_request_answers_503(client: Client) -> None:
    response = client.get("/connection-gone/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"


@pytest.mark.django_db  # pytest-django blocks every connection, a second database's included, without it
def test_a_real_database_on_a_closed_port_answers_503(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="config.middleware"):
        response = client.get("/unreachable-postgres/")

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "OperationalError" in logged
    assert "relay_owner" not in logged


def test_unexpected_error_answers_500_with_the_friendly_page(settings) -> None:
    # given
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    # when
    response = client.get("/broken/")

    # then
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "css/site.css" in response.text
    assert "Retry-After" not in response


def test_with_debug_a_database_error_is_left_to_djangos_technical_page(settings, client: Client) -> None:
    settings.DEBUG = True

    with pytest.raises(OperationalError):
        client.get("/database-down/")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/deadlock/", 500),  # a bug or a conflict to see, not an outage
        ("/sqlite-error/?message=no such table: users_user", 500),
        ("/sqlite-error/?message=database is locked", 503),
    ],
)
def test_only_a_database_that_cannot_be_reached_answers_503(settings, path: str, status: int) -> None:
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    assert client.get(path).status_code == status
