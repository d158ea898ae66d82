from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from users import forms
from users.events import UserCreated, UserCreationSource
from users.models import User

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("users:signup")


def signup_data(password: str, **overrides: str) -> dict[str, str]:
    return {"email": "ann@example.com", "name": "Ann Lee", "password1": password, "password2": password} | overrides


def test_signup_page_shows_the_form(client: Client) -> None:
    response = client.get(SIGNUP_URL)

    assert response.status_code == 200
    for field in ("email", "name", "password1", "password2", "csrfmiddlewaretoken"):
        assert f'name="{field}"' in response.text
    assert "css/site.css" in response.text


def test_signup_creates_the_user_signs_them_in_and_greets_them(
    client: Client, django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SIGNUP_URL, signup_data(password))

    # then
    assert response.status_code == 302
    assert response.url == reverse("home")
    user = User.objects.get()
    assert user.email == "ann@example.com"
    assert int(client.session["_auth_user_id"]) == user.pk
    assert [(event.user_id, event.source) for event in captured_events] == [(user.pk, UserCreationSource.SIGNUP_FORM)]
    greeting = client.get(response.url)
    assert "Hello, Ann Lee!" in greeting.text


def test_signup_with_an_address_taken_in_another_case_is_a_form_error(
    client: Client, captured_events: list[UserCreated], password: str
) -> None:
    UserFactory(email="ann@example.com")

    response = client.post(SIGNUP_URL, signup_data(password, email="ANN@EXAMPLE.COM"))

    assert response.status_code == 200
    assert "already exists" in response.context["form"].errors["email"][0]
    assert User.objects.count() == 1
    assert captured_events == []


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"password1": "abc", "password2": "abc"}, "password1", "too short"),
        ({"password1": "password123", "password2": "password123"}, "password1", "too common"),
        ({"password2": "a-different-but-strong-one"}, "password2", "didn’t match"),
        ({"email": "not-an-address"}, "email", "valid email"),
        ({"email": ""}, "email", "required"),
    ],
)
def test_bad_signup_input_is_a_form_error_and_creates_nothing(
    client: Client, password: str, overrides: dict[str, str], field: str, message: str
) -> None:
    response = client.post(SIGNUP_URL, signup_data(password, **overrides))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not User.objects.exists()
    assert "_auth_user_id" not in client.session


def test_signup_ignores_injected_privilege_fields(client: Client, password: str) -> None:
    response = client.post(
        SIGNUP_URL, signup_data(password, is_staff="on", is_superuser="on", is_active="", date_joined="2000-01-01")
    )

    assert response.status_code == 302
    user = User.objects.get()
    assert not user.is_staff
    assert not user.is_superuser
    assert user.is_active
    assert user.date_joined.year != 2000


def test_signup_without_csrf_token_is_forbidden_and_creates_nothing(password: str) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(SIGNUP_URL, signup_data(password))

    assert response.status_code == 403
    assert not User.objects.exists()


def test_signup_with_csrf_token_passes_csrf_checks(password: str) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(SIGNUP_URL)
    token = client.cookies["csrftoken"].value

    response = client.post(SIGNUP_URL, signup_data(password) | {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert User.objects.count() == 1


def test_signup_that_loses_the_race_for_the_address_is_a_form_error(
    client: Client, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    # given: the form's check passes, as it does for a request racing another for the same address
    UserFactory(email="ann@example.com")
    monkeypatch.setattr(forms, "user_email_is_taken", lambda *, email: False)

    response = client.post(SIGNUP_URL, signup_data(password, email="Ann@example.com"))

    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors)
    assert User.objects.count() == 1


def test_signed_in_user_visiting_signup_goes_home(client: Client) -> None:
    client.force_login(UserFactory())

    response = client.get(SIGNUP_URL)

    assert response.status_code == 302
    assert response.url == reverse("home")


def test_login_accepts_the_address_in_any_case_and_logout_signs_out(client: Client, password: str) -> None:
    user = UserFactory(email="ann@example.com")

    response = client.post(reverse("users:login"), {"username": "ANN@example.com", "password": password})

    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == user.pk
    response = client.post(reverse("users:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_home_invites_anonymous_visitors_to_sign_up(client: Client) -> None:
    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert reverse("users:signup") in response.text


def test_the_login_page_asked_to_return_to_itself_sends_a_signed_in_user_home(staff_client) -> None:
    response = staff_client.get("/login/?next=/login/")

    assert response.status_code == 302
    assert response.url == "/"


NEVER_MAILED = [
    ("root@localhost", "not a local name"),
    ("x@[127.0.0.1]", "not on an IP address"),
    ('"a@b"@example.com', "cannot be quoted"),
    ("ann%evil.com@example.com", "cannot be quoted"),
    ("evil.com!ann@example.com", "cannot be quoted"),
    ("ann,bob@example.com", "Enter a valid email address"),
    ("ann@intranet", "Enter a valid email address"),
]


@pytest.mark.parametrize("email, message", NEVER_MAILED)
def test_signup_with_an_address_the_project_should_never_mail_is_a_form_error(
    password: str, email: str, message: str
) -> None:
    # given: a browser's session, CSRF enforced
    client = Client(enforce_csrf_checks=True)
    client.get(SIGNUP_URL)

    # when
    response = client.post(
        SIGNUP_URL, signup_data(password, email=email, csrfmiddlewaretoken=client.cookies["csrftoken"].value)
    )

    # then
    assert response.status_code == 200
    assert message in str(response.context["form"].errors["email"])
    assert not User.objects.exists()
