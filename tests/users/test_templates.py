"""The signup and login pages as assistive technology reads them: descriptions, focus, labels."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from users import forms

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("users:signup")
LOGIN_URL = reverse("users:login")
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """The elements of a rendered page, with the text of each element that has an id and of each label."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, str] = {}  # by id, and "label:<for>" for labels
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag in VOID_TAGS:
            return
        key = f"label:{attributes['for']}" if tag == "label" and attributes.get("for") else attributes.get("id")
        if key:
            self.text.setdefault(key, "")
        self._open.append((tag, key))

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _tag, key in self._open:
            if key:
                self.text[key] += data

    def ids(self) -> list[str]:
        return [attributes["id"] for _tag, attributes in self.elements if attributes.get("id")]

    def described_by(self) -> list[str]:
        return [
            reference
            for _tag, attributes in self.elements
            for reference in (attributes.get("aria-describedby") or "").split()
        ]

    def autofocused(self) -> list[str | None]:
        return [attributes.get("name") for _tag, attributes in self.elements if "autofocus" in attributes]

    def said(self, element_id: str) -> str:
        return " ".join(self.text.get(element_id, "").split())


def signup_data(password: str, **overrides: str) -> dict[str, str]:
    return {"email": "ann@example.com", "name": "Ann Lee", "password1": password, "password2": password} | overrides


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"email": "", "name": "", "password1": "", "password2": ""},
        {"email": "not-an-address", "name": "x" * 151, "password1": "abc", "password2": "abd"},
    ],
    ids=["blank form", "every field missing", "every field wrong"],
)
def test_every_signup_description_names_an_element_on_the_page(client: Client, data: dict[str, str] | None) -> None:
    # when
    response = client.get(SIGNUP_URL) if data is None else client.post(SIGNUP_URL, data)

    # then
    page = Page(response.text)
    assert page.described_by(), "the password fields at least are described by their help"
    assert set(page.described_by()) <= set(page.ids())
    assert len(page.ids()) == len(set(page.ids()))


def test_every_login_description_names_an_element_on_the_page(client: Client) -> None:
    response = client.post(LOGIN_URL, {"username": "", "password": ""})

    page = Page(response.text)
    assert page.described_by()
    assert set(page.described_by()) <= set(page.ids())


def test_errors_and_help_are_the_descriptions_of_their_field(client: Client) -> None:
    response = client.post(SIGNUP_URL, signup_data("abc", email=""))

    page = Page(response.text)
    assert "required" in page.said("id_email_error")
    assert "too short" in page.said("id_password1_error")
    assert "at least 8 characters" in page.said("id_password1_helptext")


def test_blank_signup_form_focuses_the_email(client: Client) -> None:
    response = client.get(SIGNUP_URL)

    assert Page(response.text).autofocused() == ["email"]


@pytest.mark.parametrize(
    "overrides, first_invalid",
    [
        ({"password1": "abc", "password2": "abc"}, "password1"),
        ({"password2": "a-different-but-strong-one"}, "password2"),
        ({"name": "x" * 151, "password1": "abc", "password2": "abc"}, "name"),
        ({"email": "not-an-address", "password1": "abc", "password2": "abc"}, "email"),
    ],
)
def test_invalid_signup_focuses_its_first_invalid_field_only(
    client: Client, password: str, overrides: dict[str, str], first_invalid: str
) -> None:
    response = client.post(SIGNUP_URL, signup_data(password, **overrides))

    assert response.status_code == 200
    assert Page(response.text).autofocused() == [first_invalid]


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"password1": "abc", "password2": "abc"}, "password1", "too short"),
        ({"password1": "password123", "password2": "password123"}, "password1", "too common"),
        ({"password2": "a-different-but-strong-one"}, "password2", "didn’t match"),
    ],
)
def test_password_error_shows_under_its_password_field(
    client: Client, password: str, overrides: dict[str, str], field: str, message: str
) -> None:
    response = client.post(SIGNUP_URL, signup_data(password, **overrides))

    page = Page(response.text)
    assert message in page.said(f"id_{field}_error")
    assert "form-errors" not in [attributes.get("class") for _tag, attributes in page.elements]


def test_password_the_service_rejects_shows_under_the_password_field(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a password the form lets through, as if its validators and the service's disagreed
    monkeypatch.setattr(forms.UserCreationForm, "validate_password_for_user", lambda self, user, **kwargs: None)

    # when
    response = client.post(SIGNUP_URL, signup_data("abc"))

    # then
    page = Page(response.text)
    assert "too short" in page.said("id_password1_error")
    assert page.autofocused() == ["password1"]


def test_display_name_is_marked_optional_and_required_fields_are_not(client: Client) -> None:
    response = client.get(SIGNUP_URL)

    page = Page(response.text)
    assert page.said("label:id_name") == "Display name (optional)"
    for field in ("email", "password1", "password2"):
        assert "optional" not in page.said(f"label:id_{field}")
