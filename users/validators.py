"""Validators of users' identities: one account per mailbox, names that cannot forge lines."""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.encoding import punycode

# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties): invisible in an address,
# so "ann@example.com" with one of them inside would be a second account for one mailbox.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# Control characters and line or paragraph separators: a name is one line in every e-mail.
FORBIDDEN_IN_NAMES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


def _is_invisible(char: str) -> bool:
    code = ord(char)
    return unicodedata.category(char) in {"Cc", "Cf"} or any(low <= code <= high for low, high in DEFAULT_IGNORABLE)


def normalize_email_domain(email: str) -> str:
    """Return email with its domain in lower-case ASCII (IDNA): its Unicode and xn-- forms are one address."""
    local, at, domain = email.rpartition("@")
    if not at or not domain:
        return email
    try:
        return f"{local}@{punycode(domain.lower())}".rstrip(".")
    except UnicodeError:
        return email  # validate_mailbox says why


def _scripts(label: str) -> set[str]:
    """Return the scripts of a label's letters (by the first word of each letter's Unicode name)."""
    found = set()
    for char in label:
        if char.isalpha():
            found.add(unicodedata.name(char, "UNKNOWN").split()[0])
    return found


def validate_mailbox(value: str) -> None:
    """Refuse an address that is not one plain, deliverable mailbox.

    Invisible characters, a domain that mixes scripts in one label (a Cyrillic "а" in a Latin name),
    a domain that has no IDNA form, and a local part our mail server cannot send to (anything but
    ASCII: SMTP without SMTPUTF8) are refused.
    """
    if any(_is_invisible(char) for char in value):
        raise ValidationError("Enter the address without invisible characters.", code="invisible")
    local, _at, domain = value.rpartition("@")
    if not local.isascii():
        raise ValidationError(
            "The part before @ must use plain letters, digits and . _ % + - only: we could not deliver mail to it.",
            code="undeliverable",
        )
    try:
        ascii_domain = punycode(domain)
        # Stored addresses carry the ASCII form: read its xn-- labels back to see their letters.
        unicode_domain = ascii_domain.encode("ascii").decode("idna")
    except UnicodeError:
        raise ValidationError("Enter a valid domain after @.", code="invalid_domain") from None
    for label in unicode_domain.split("."):
        if len(_scripts(label)) > 1:
            raise ValidationError(
                "The domain mixes alphabets (e.g. a Cyrillic letter among Latin ones).", code="mixed_scripts"
            )
    if not ascii_domain:
        raise ValidationError("Enter a valid domain after @.", code="invalid_domain")


def validate_display_name(value: str) -> None:
    """Refuse control characters and line breaks: a name is one line in e-mails and notices."""
    if any(unicodedata.category(char) in FORBIDDEN_IN_NAMES for char in value):
        raise ValidationError("Use letters, spaces and punctuation only (no line breaks or control characters).")


# Characters that draw nothing though Unicode does not call them spaces: the Hangul fillers, the
# blank Braille pattern, the Mongolian vowel separator.
BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Categories that draw nothing on their own: spaces and separators, format and control characters
# (zero-width space, word joiner), combining marks with nothing to combine with.
INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc", "Mn", "Me"})


def visible(text: str) -> str:
    """Return the characters of text that draw something."""
    return "".join(
        char
        for char in text
        if not char.isspace() and char not in BLANK_GLYPHS and unicodedata.category(char) not in INVISIBLE_CATEGORIES
    )


class NotOnlyWhitespaceValidator:
    """Refuse a password made only of spaces or invisible characters (the length validator counts them)."""

    MESSAGE = "Your password cannot be made of spaces or invisible characters only."

    def validate(self, password: str, user: Any = None) -> None:
        """Raise ValidationError for a password with no visible character."""
        if not visible(password):
            raise ValidationError(self.MESSAGE, code="password_blank")

    def get_help_text(self) -> str:
        """Say the rule."""
        return self.MESSAGE
