"""Abuse limits, attacked through a client that enforces CSRF as a browser's requests would meet it."""

from __future__ import annotations

import itertools
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


# The spellings of victim@example.com that the login accepted without counting them (issue 16).
SPELLINGS = [
    " victim@example.com",
    "victim@example.com ",
    "victim@example.com.",
    "victim@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth domain
    "\uff56\uff49\uff43\uff54\uff49\uff4d@example.com",  # fullwidth local part
    "victim@exam\u00adple.com",  # soft hyphen
    "victim@example\u3002com",  # ideographic full stop
    "VICTIM@Example.COM",
]


def login(path: str, username: str, password: str, *, client_address: str = "127.0.0.1") -> int:
    return post_form(csrf_client(REMOTE_ADDR=client_address), path, {"username": username, "password": password})


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_no_spelling_of_an_address_escapes_its_failure_limit(settings, path: str, spelling: str) -> None:
    # given: five failures for the account, from five clients
    UserFactory(email="victim@example.com", is_staff=True)
    failures = [login(path, "victim@example.com", f"wrong-{n}", client_address=f"198.51.100.{n}") for n in range(5)]

    # when: another spelling with the right password, from yet another client
    answer = login(path, spelling, PASSWORD, client_address="203.0.113.7")

    # then
    assert failures == [200] * 5
    assert answer == 429


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_failures_under_any_spelling_count_against_the_account(spelling: str) -> None:
    UserFactory(email="victim@example.com")
    for n in range(5):
        login("/login/", spelling, f"wrong-{n}", client_address=f"198.51.100.{n}")

    assert login("/login/", "victim@example.com", PASSWORD, client_address="203.0.113.7") == 429


def test_45_guesses_over_spellings_and_clients_reach_the_password_check_five_times() -> None:
    # given: three clients, each under its own failure limit (20), trying spellings in turn
    UserFactory(email="victim@example.com")
    clients = itertools.cycle(["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    spellings = itertools.cycle(["victim@example.com", *SPELLINGS])

    # when
    answers = [login("/login/", next(spellings), f"guess-{n}", client_address=next(clients)) for n in range(45)]

    # then: five wrong-password answers, then 429 for the forty others and for the right password
    assert answers == [200] * 5 + [429] * 40
    assert login("/login/", " victim@example.com.", PASSWORD, client_address="203.0.113.7") == 429


@pytest.mark.parametrize(
    "spelling", ["vic\u00adtim@example.com", "victim@exa..mple.com", "victim@\u2603.com", "victim", "@example.com"]
)
def test_a_spelling_with_no_canonical_form_is_a_wrong_login_not_an_account(client, spelling: str) -> None:
    UserFactory(email="victim@example.com")

    response = client.post("/login/", {"username": spelling, "password": PASSWORD})

    assert response.status_code == 200
    assert "correct e-mail address and password" in response.text
    assert "_auth_user_id" not in client.session


def test_signups_for_one_address_are_limited_in_any_spelling(settings) -> None:
    settings.THROTTLE_SIGNUPS_PER_ADDRESS = 3
    spellings = ["victim@example.com", " VICTIM@example.com", "victim@example.com.", "victim@exam\u00adple.com"]

    answers = [signup(csrf_client(REMOTE_ADDR=f"198.51.100.{n}"), email) for n, email in enumerate(spellings)]

    assert answers[-1] == 429


@pytest.mark.parametrize(
    "addresses",
    [
        # one subscriber's /64: any address in it is the same client
        ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"],
        # an IPv4-mapped IPv6 address is its IPv4 address
        ["203.0.113.9", "::ffff:203.0.113.9", "::ffff:cb00:7109"],
    ],
)
def test_a_client_is_its_ipv4_address_or_its_ipv6_64(settings, addresses: list[str]) -> None:
    settings.THROTTLE_SIGNUPS_PER_CLIENT = 2

    answers = [signup(csrf_client(REMOTE_ADDR=address), f"user{n}@example.com") for n, address in enumerate(addresses)]

    assert answers == [302, 302, 429]


def test_a_neighbouring_ipv6_64_is_another_client(settings) -> None:
    settings.THROTTLE_SIGNUPS_PER_CLIENT = 1

    first = signup(csrf_client(REMOTE_ADDR="2001:db8:1:2::1"), "ann@example.com")
    neighbour = signup(csrf_client(REMOTE_ADDR="2001:db8:1:3::1"), "bob@example.com")

    assert (first, neighbour) == (302, 302)


def test_a_forwarded_ipv6_address_counts_per_64_behind_a_trusted_proxy(settings) -> None:
    settings.THROTTLE_TRUSTED_PROXIES = 1
    settings.THROTTLE_SIGNUPS_PER_CLIENT = 2

    answers = [
        signup(csrf_client(), f"user{n}@example.com", HTTP_X_FORWARDED_FOR=f"2001:db8:7::{n + 1}") for n in range(3)
    ]

    assert answers == [302, 302, 429]


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_logins_from_one_client_are_limited_successful_or_not(settings, path: str) -> None:
    # given: each login costs a password hash, on the client's demand
    settings.THROTTLE_LOGINS_PER_CLIENT = 3
    UserFactory(email="ann@example.com", is_staff=True)

    # when: a client logs in successfully again and again
    answers = [login(path, "ann@example.com", PASSWORD) for _ in range(5)]

    # then: refused past the limit; another client is not
    assert answers == [302, 302, 302, 429, 429]
    assert login(path, "ann@example.com", PASSWORD, client_address="198.51.100.1") == 302
