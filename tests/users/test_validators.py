from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.factories import PASSWORD, UserFactory
from users.models import User
from users.services import user_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "invisible", ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u034f", "\ufe0f", "\U000e0041"]
)
def test_an_address_with_an_invisible_character_is_refused(invisible: str) -> None:
    UserFactory(email="ann@example.com")

    with pytest.raises(ValidationError) as raised:
        user_create(email=f"an{invisible}n@example.com", password=PASSWORD)

    assert "invisible" in str(raised.value)
    assert User.objects.count() == 1


def test_the_unicode_and_ascii_forms_of_a_domain_are_one_account() -> None:
    user = user_create(email="ann@bücher.example", password=PASSWORD)

    assert user.email == "ann@xn--bcher-kva.example"
    with pytest.raises(ValidationError, match="already exists"):
        user_create(email="ANN@xn--bcher-kva.example", password=PASSWORD)
    assert User.objects.get_by_natural_key("ann@BÜCHER.example") == user


def test_a_domain_mixing_alphabets_is_refused() -> None:
    with pytest.raises(ValidationError, match="mixes alphabets"):
        user_create(email="ann@ex\u0430mple.com", password=PASSWORD)  # a Cyrillic "а"


def test_an_address_the_mail_server_cannot_send_to_is_refused() -> None:
    with pytest.raises(ValidationError, match="could not deliver"):
        user_create(email="\u0130van@example.com", password=PASSWORD)  # a dotted capital I


@pytest.mark.parametrize("name", ["Ann\nBcc: everyone", "Ann\r\nX", "Ann\x00", "Ann\u2028Bob", "Ann\u202eevil"])
def test_a_name_with_control_characters_or_line_breaks_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="no line breaks"):
        user_create(email="ann@example.com", password=PASSWORD, name=name)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "password", [" " * 12, "\u200b" * 12, "\u3164" * 12, "\u2800" * 12, "\u2060" * 12, "\u200b \u3164\u2800" * 4]
)
def test_a_password_of_spaces_or_invisible_characters_only_is_refused(password: str) -> None:
    with pytest.raises(ValidationError, match="spaces or invisible characters only"):
        user_create(email="ann@example.com", password=password)
    assert not User.objects.exists()


def test_a_password_with_visible_characters_among_invisible_ones_is_kept() -> None:
    user_create(email="ann@example.com", password="\u200b" * 6 + "correct-horse-battery")

    assert User.objects.filter(email="ann@example.com").exists()
