"""Abuse limits, attacked through a client that enforces CSRF as a browser's requests would meet it."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import PASSWORD, UserFactory
from users.models import User

pytestmark = pytest.mark.django_db


def csrf_client(**defaults: str) -> Client:
    return Client(enforce_csrf_checks=True, **defaults)


def post_form(client: Client, path: str, data: dict[str, str], **extra: str) -> int:
    page = client.get(path, **extra)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return client.post(path, {**data, "csrfmiddlewaretoken": token}, **extra).status_code


def signup(client: Client, email: str, **extra: str) -> int:
    data = {"email": email, "name": "Spam", "password1": PASSWORD, "password2": PASSWORD}
    return post_form(client, "/signup/", data, **extra)


def test_signups_from_one_client_are_limited(settings) -> None:
    settings.THROTTLE_SIGNUPS_PER_CLIENT = 3
    statuses = [signup(csrf_client(), f"user{n}@example.com") for n in range(5)]

    assert statuses == [302, 302, 302, 429, 429]
    assert User.objects.count() == 3


def test_a_forged_forwarded_for_header_does_not_reset_the_limit(settings) -> None:
    # given: one trusted proxy, which appends the address it saw (203.0.113.9) to the header
    settings.THROTTLE_TRUSTED_PROXIES = 1
    settings.THROTTLE_SIGNUPS_PER_CLIENT = 2

    statuses = [
        signup(csrf_client(), f"user{n}@example.com", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.9") for n in range(4)
    ]

    assert statuses == [302, 302, 429, 429]


def test_signups_for_one_address_are_limited_whatever_the_client(settings) -> None:
    settings.THROTTLE_SIGNUPS_PER_ADDRESS = 2
    statuses = [signup(csrf_client(REMOTE_ADDR=f"198.51.100.{n}"), "victim@example.com") for n in range(3)]

    assert statuses[-1] == 429


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_repeated_failed_logins_are_throttled_even_with_the_right_password_then_cool_off(settings, path: str) -> None:
    settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.THROTTLE_LOGIN_WINDOW = 2
    UserFactory(email="ann@example.com", is_staff=True)

    failures = [
        post_form(csrf_client(), path, {"username": "ann@example.com", "password": f"wrong-{n}"}) for n in range(5)
    ]
    right_now = post_form(csrf_client(), path, {"username": "ann@example.com", "password": PASSWORD})

    assert failures == [200] * 5
    assert right_now == 429

    import time

    time.sleep(2.2)
    assert post_form(csrf_client(), path, {"username": "ann@example.com", "password": PASSWORD}) == 302


def test_a_signup_goes_through_when_redis_is_down(settings) -> None:
    from devtools.redis_server import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    assert signup(csrf_client(), "ann@example.com") == 302
