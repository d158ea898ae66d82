"""Password reset end to end, attacked through a client that enforces CSRF: same answer for any address, throttled."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEntry
from audit.tasks import record_email_confirmed, record_password_reset
from devtools.redis_server import free_port
from events.models import Delivery, Event
from events.testing import run_due
from notifications.tasks import send_password_reset_email
from tests.factories import UserFactory
from users.events import UserPasswordReset, UserPasswordResetRequested
from users.models import User

pytestmark = pytest.mark.django_db

RESET_URL = "/password-reset/"
NEW_PASSWORD = "a-brand-new-passphrase-42"


def csrf_token(client: Client, path: str) -> str:
    page = client.get(path)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def ask_reset(client: Client, email: str):
    return client.post(RESET_URL, {"email": email, "csrfmiddlewaretoken": csrf_token(client, RESET_URL)})


def reset_path(message: mail.EmailMessage) -> str:
    return urlsplit(re.search(r"https?://\S+/password-reset/\S+/\S+/", message.body).group(0)).path


def test_the_login_page_links_to_the_reset() -> None:
    assert f'href="{RESET_URL}"' in Client().get("/login/").text


def test_a_known_and_an_unknown_address_get_the_same_answer() -> None:
    # given
    UserFactory(email="ann@example.com")

    # when
    known = ask_reset(Client(enforce_csrf_checks=True), "ann@example.com")
    unknown = ask_reset(Client(enforce_csrf_checks=True), "nobody@example.com")

    # then: the same redirect to the same page; only the known address is owed an e-mail
    assert (
        (known.status_code, known["Location"])
        == (unknown.status_code, unknown["Location"])
        == (302, "/password-reset/sent/")
    )
    assert Client().get(known["Location"]).content == Client().get(unknown["Location"]).content
    assert Event.objects.filter(name=UserPasswordResetRequested.name).count() == 1
    run_due(send_password_reset_email.name)
    assert [message.to for message in mail.outbox] == [["ann@example.com"]]


@pytest.mark.parametrize("change", [{"is_active": False}, {"password": None}])
def test_an_account_that_cannot_reset_gets_the_same_answer_and_no_mail(change: dict[str, object]) -> None:
    UserFactory(email="ann@example.com", **change)

    response = ask_reset(Client(enforce_csrf_checks=True), "ann@example.com")

    assert (response.status_code, response["Location"]) == (302, "/password-reset/sent/")
    assert not Event.objects.filter(name=UserPasswordResetRequested.name).exists()


def test_a_reset_sets_the_password_confirms_the_address_and_is_audited_once() -> None:
    # given: a squatter's session on the account, and the owner asking for a link in another letter case
    user = UserFactory(email="owner@example.com", name="URGENT: verify at https://evil.example/login now!")
    squatter = Client()
    squatter.force_login(user)
    owner = Client(enforce_csrf_checks=True)
    ask_reset(owner, "OWNER@example.com")
    run_due(send_password_reset_email.name)
    [message] = mail.outbox
    link = reset_path(message)

    # when: the owner opens the link and sets a password
    opened = owner.get(link)
    form_path = opened["Location"]
    token = csrf_token(owner, form_path)
    done = owner.post(
        form_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD, "csrfmiddlewaretoken": token}
    )
    run_due(record_password_reset.name, record_email_confirmed.name)

    # then
    assert (opened.status_code, done.status_code, done["Location"]) == (302, 302, "/password-reset/done/")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert user.email_confirmed_at is not None
    assert Event.objects.filter(name=UserPasswordReset.name).count() == 1
    reset = AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_RESET)
    confirmed = AuditEntry.objects.get(action=AuditEntry.Action.EMAIL_CONFIRMED)
    assert (reset.target_user_id, reset.actor_id, confirmed.target_user_id, confirmed.source) == (
        user.pk,
        user.pk,
        user.pk,
        "password_reset",
    )
    assert "_auth_user_id" not in squatter.get("/").wsgi_request.session
    # and the link works once
    again = Client().get(link)
    assert again.status_code == 400
    assert "This reset link does not work" in again.text


def test_a_weak_new_password_is_a_form_error_and_changes_nothing() -> None:
    user = UserFactory(email="ann@example.com")
    owner = Client(enforce_csrf_checks=True)
    ask_reset(owner, "ann@example.com")
    run_due(send_password_reset_email.name)
    form_path = owner.get(reset_path(mail.outbox[0]))["Location"]

    response = owner.post(
        form_path, {"new_password1": "abc", "new_password2": "abc", "csrfmiddlewaretoken": csrf_token(owner, form_path)}
    )

    assert response.status_code == 200
    assert "too short" in response.text
    assert not Event.objects.filter(name=UserPasswordReset.name).exists()
    user.refresh_from_db()
    assert user.email_confirmed_at is None


@pytest.mark.parametrize("path", ["/password-reset/MQ/bad-token/", "/password-reset/not-base64/x-y/"])
def test_a_made_up_reset_link_is_a_clear_400(path: str) -> None:
    UserFactory()

    response = Client().get(path)

    assert response.status_code == 400
    assert "This reset link does not work" in response.text


def test_reset_requests_from_one_client_are_limited(settings) -> None:
    settings.THROTTLE_PASSWORD_RESETS_PER_CLIENT = 3
    UserFactory(email="ann@example.com")
    client = Client(enforce_csrf_checks=True)

    statuses = [ask_reset(client, f"user{n}@example.com").status_code for n in range(4)]
    statuses.append(ask_reset(client, "ann@example.com").status_code)

    assert statuses == [302, 302, 302, 429, 429]
    assert not Event.objects.filter(name=UserPasswordResetRequested.name).exists()


@pytest.mark.parametrize("email", ["ann@example.com", "nobody@example.com"])
def test_reset_requests_for_one_address_are_limited_whatever_the_client_known_or_not(settings, email: str) -> None:
    settings.THROTTLE_PASSWORD_RESETS_PER_ADDRESS = 2
    UserFactory(email="ann@example.com")

    statuses = [
        ask_reset(Client(enforce_csrf_checks=True, REMOTE_ADDR=f"198.51.100.{n}"), email).status_code for n in range(3)
    ]

    assert statuses == [302, 302, 429]


def test_a_mail_server_that_is_down_fails_no_request_and_the_delivery_says_why_without_the_address(settings) -> None:
    # given: nothing listens where the mail server should be
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 2},
        }
    }
    UserFactory(email="ann@example.com")

    # when
    response = ask_reset(Client(enforce_csrf_checks=True), "ann@example.com")
    run_due(send_password_reset_email.name)

    # then: the page answered as always; the e-mail is owed, with an error that names no address
    assert response.status_code == 302
    delivery = Delivery.objects.get(consumer=send_password_reset_email.name)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.last_error and "ann@example.com" not in delivery.last_error


def test_a_reset_lets_the_owner_sign_in_past_the_failures_a_guesser_left(settings) -> None:
    # given: a guesser has used up the account's failed logins
    settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = 3
    UserFactory(email="ann@example.com")
    guesser = Client()
    for _ in range(3):
        guesser.post("/login/", {"username": "ann@example.com", "password": "guess"})
    owner = Client(enforce_csrf_checks=True)
    login = {"username": "ann@example.com", "password": NEW_PASSWORD}

    # when: the owner resets the password through the e-mailed link
    ask_reset(owner, "ann@example.com")
    run_due(send_password_reset_email.name)
    form_path = owner.get(reset_path(mail.outbox[0]))["Location"]
    token = csrf_token(owner, form_path)
    owner.post(form_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD, "csrfmiddlewaretoken": token})

    # then: the new password signs in at once
    response = owner.post("/login/", login | {"csrfmiddlewaretoken": csrf_token(owner, "/login/")})
    assert response.status_code == 302


def test_a_link_sent_before_the_account_was_closed_is_refused() -> None:
    user = UserFactory(email="ann@example.com")
    ask_reset(Client(enforce_csrf_checks=True), "ann@example.com")
    run_due(send_password_reset_email.name)
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = Client().get(reset_path(mail.outbox[0]))

    assert response.status_code == 400
    assert not Event.objects.filter(name=UserPasswordReset.name).exists()


@pytest.mark.parametrize("spelling", ["ANN@EXAMPLE.COM", " ann@example.com ", "ａｎｎ@example.com"])
def test_a_reset_finds_the_account_by_any_spelling_the_login_accepts(spelling: str) -> None:
    UserFactory(email="ann@example.com")

    ask_reset(Client(enforce_csrf_checks=True), spelling)
    run_due(send_password_reset_email.name)

    assert [message.to for message in mail.outbox] == [["ann@example.com"]]


def test_the_per_address_limit_counts_every_spelling_as_one(settings) -> None:
    settings.THROTTLE_PASSWORD_RESETS_PER_ADDRESS = 2
    spellings = ["ann@example.com", "ANN@example.com", "ａｎｎ@example.com"]

    statuses = [
        ask_reset(Client(enforce_csrf_checks=True, REMOTE_ADDR=f"198.51.100.{n}"), email).status_code
        for n, email in enumerate(spellings)
    ]

    assert statuses == [302, 302, 429]


@pytest.mark.parametrize("email", ["not-an-address", ""])
def test_what_is_no_address_is_a_form_error_and_sends_nothing(email: str) -> None:
    response = ask_reset(Client(enforce_csrf_checks=True), email)

    assert response.status_code == 200
    assert response.context["form"].errors["email"]
    assert not Event.objects.exists()
