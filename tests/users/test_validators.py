from __future__ import annotations

import unicodedata

import pytest
from django.core.exceptions import ValidationError

from tests.factories import PASSWORD, UserFactory
from users.models import User
from users.services import user_create
from users.validators import canonical_email

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


@pytest.mark.parametrize(
    "spelling",
    [
        "victim@example.com",
        " victim@example.com",
        "victim@example.com.",
        "VICTIM@EXAMPLE.COM",
        "victim@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
        "victim@exam\u00adple.com",
        "victim@exam\u200bple.com",
        "victim@example\u3002com",
        "\uff56\uff49\uff43\uff54\uff49\uff4d@example.com",
    ],
)
def test_every_spelling_of_one_mailbox_has_one_canonical_form(spelling: str) -> None:
    assert canonical_email(spelling) == "victim@example.com"
    # What Django's login form hands the backend (stripped, NFKC) has the same one.
    assert canonical_email(unicodedata.normalize("NFKC", spelling.strip())) == "victim@example.com"


@pytest.mark.parametrize(
    "spelling",
    ["victim", "@example.com", "victim@", "vic\u00adtim@example.com", "victim@exa..mple.com", "v@\u2603.com"],
)
def test_a_spelling_that_is_no_mailbox_has_no_canonical_form(spelling: str) -> None:
    assert canonical_email(spelling) is None


def test_a_sharp_s_domain_is_its_idna_2008_domain_not_another_owner_s() -> None:
    # IDNA 2003 maps straße.de to strasse.de: a different domain, with another owner, under IDNA 2008.
    user = user_create(email="u@straße.de", password=PASSWORD)

    assert user.email == "u@xn--strae-oqa.de"
    assert canonical_email("u@STRASSE.de") == "u@strasse.de"
    assert User.objects.get_by_natural_key("u@Straße.de") == user
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key("u@strasse.de")
    user_create(email="u@strasse.de", password=PASSWORD)  # the other mailbox can have its account


def test_a_final_sigma_keeps_its_idna_2008_meaning() -> None:
    # IDNA 2003 maps the final ς to σ: two domains under IDNA 2008 would be one account.
    assert canonical_email("u@\u03c3\u03bf\u03bb\u03bf\u03c2.gr") != canonical_email(
        "u@\u03c3\u03bf\u03bb\u03bf\u03c3.gr"
    )


def test_an_account_stored_under_idna_2003_with_a_symbol_domain_can_still_log_in(client) -> None:
    # given: i❤.ws, which IDNA 2003 encoded and IDNA 2008 refuses (new signups are refused it)
    UserFactory(email="ann@xn--i-7iq.ws")

    assert client.login(email="ANN@xn--i-7iq.ws", password=PASSWORD)
    with pytest.raises(ValidationError, match="valid domain"):
        user_create(email="bob@xn--i-7iq.ws", password=PASSWORD)


@pytest.mark.parametrize(
    "email, message",
    [
        ("root@localhost", "not a local name"),
        ("ann@printer.local", "not a local name"),
        ("ann@box.localhost", "not a local name"),
        ("x@[127.0.0.1]", "not on an IP address"),
        ("x@[IPv6:::1]", "not on an IP address"),
        ('"a@b"@example.com', "cannot be quoted"),
        ("ann%evil.com@example.com", "cannot be quoted"),
        ("evil.com!ann@example.com", "cannot be quoted"),
    ],
)
def test_an_address_the_project_should_never_mail_is_refused(email: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        user_create(email=email, password=PASSWORD)
    assert not User.objects.exists()


@pytest.mark.parametrize("email", ["o'brien@example.com", "ann+news@example.com", "a.b-c_d@sub.example.co.uk"])
def test_plain_addresses_with_signs_are_kept(email: str) -> None:
    assert user_create(email=email, password=PASSWORD).email == email


def test_the_login_form_s_normalisation_never_changes_an_address_s_canonical_form() -> None:
    # The limits see the raw POST, the login lookup what Django's form made of it (stripped, NFKC):
    # for every character of the BMP, at the ends and inside either part, both have one identity.
    differing = [
        f"U+{code:04X} in {spelling!r}"
        for code in range(0x10000)
        for spelling in (f"{chr(code)}ann@example.com", f"an{chr(code)}n@example.com", f"ann@exam{chr(code)}ple.com")
        + (f"ann@example.com{chr(code)}",)
        if canonical_email(spelling) != canonical_email(unicodedata.normalize("NFKC", spelling.strip()))
    ]

    assert differing == []
