from __future__ import annotations

import pytest
from django.core import mail

from devtools.run import read_port, serve_site_on_port, site_url
from notifications.services import welcome_email_send
from tests.factories import UserCreatedFactory, UserFactory


@pytest.mark.parametrize(
    "configured, expected",
    [
        ("", "http://127.0.0.1:8123"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8123"),
        ("http://localhost:8000", "http://localhost:8123"),
        ("http://localhost", "http://localhost:8123"),
        ("http://[::1]:8000/relay", "http://[::1]:8123/relay"),
        ("https://relay.example.com", "https://relay.example.com"),
        ("https://abc123.ngrok.app:8443", "https://abc123.ngrok.app:8443"),
    ],
)
def test_site_url_on_this_machine_follows_the_port_in_use(configured: str, expected: str) -> None:
    assert site_url(configured=configured, port="8123") == expected


def test_port_defaults_to_8000() -> None:
    assert read_port({}) == "8000"
    assert read_port({"PORT": ""}) == "8000"
    assert read_port({"PORT": "8123"}) == "8123"


@pytest.mark.parametrize("port", ["http", "0", "65536", "-1", "80 80"])
def test_a_port_that_is_no_tcp_port_stops_the_run_with_a_message(port: str) -> None:
    with pytest.raises(SystemExit, match="PORT must be a TCP port number"):
        read_port({"PORT": port})


def test_children_inherit_a_site_url_on_the_port_from_the_environment() -> None:
    # given: PORT from the shell, SITE_URL as .env.example writes it
    environ = {"PORT": "8123", "SITE_URL": "http://127.0.0.1:8000"}

    # when
    port = serve_site_on_port(environ)

    # then
    assert port == "8123"
    assert environ["SITE_URL"] == "http://127.0.0.1:8123"


@pytest.mark.django_db
def test_welcome_email_links_to_the_port_make_run_serves_on(settings) -> None:
    # given: the environment `PORT=8123 make run` gives the worker
    environ = {"PORT": "8123", "SITE_URL": "http://127.0.0.1:8000"}
    serve_site_on_port(environ)
    settings.SITE_URL = environ["SITE_URL"]
    user = UserFactory(name="Ann")

    # when
    welcome_email_send(event=UserCreatedFactory(user_id=user.pk))

    # then
    message = mail.outbox[0]
    assert "http://127.0.0.1:8123/login/" in message.body
    assert 'href="http://127.0.0.1:8123/login/"' in message.alternatives[0].content
