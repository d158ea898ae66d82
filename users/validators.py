"""Validators of users' identities: one account per mailbox, names that cannot forge lines."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import idna
from django.core.exceptions import ValidationError

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


def _ascii_domain(domain: str) -> str:
    """Return a domain in lower-case ASCII under UTS 46 / IDNA 2008; raise UnicodeError if it has none."""
    # Non-transitional (idna's only mode): straße.de is xn--strae-oqa.de, not strasse.de (IDNA 2003's
    # answer, another owner's domain). The mapping also folds case, fullwidth letters and dots, and
    # drops what the standard ignores (a soft hyphen, a zero-width space).
    labels = idna.uts46_remap(domain, std3_rules=False).split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # the root: example.com. is example.com
    if not all(labels):
        raise idna.IDNAError("Empty label")
    # ASCII labels are kept as they are: a domain stored under IDNA 2003 (xn--i-7iq.ws, a heart)
    # stays its owner's login though IDNA 2008 cannot decode it; validate_mailbox refuses it for new ones.
    return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii") for label in labels)


def mailbox_address(raw: str) -> str | None:
    """Return an address as typed in the form it is stored in, or None if it cannot be one mailbox.

    Trimmed and NFKC-normalised (as Django's login form normalises a username), the part before @
    in ASCII and kept as typed, the domain in lower-case ASCII (UTS 46 / IDNA 2008).
    """
    text = unicodedata.normalize("NFKC", raw.strip()).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or not local.isascii():
        return None
    try:
        return f"{local}@{_ascii_domain(domain)}"
    except UnicodeError:
        return None


def canonical_email(raw: str) -> str | None:
    """Return the one identity an address as typed stands for, or None if it stands for none.

    The login looks accounts up by it and every abuse limit naming an address counts by it, so no
    spelling the login accepts escapes a limit: two spellings are one account exactly when they
    have one canonical form.
    """
    address = mailbox_address(raw)
    return address.lower() if address is not None else None


def normalize_email_domain(email: str) -> str:
    """Return email with only its domain in lower-case ASCII (UTS 46 / IDNA 2008), or as it is if that has none."""
    local, at, domain = email.rpartition("@")
    if not at or not domain:
        return email
    try:
        return f"{local}@{_ascii_domain(domain)}"
    except UnicodeError:
        return email


def _scripts(label: str) -> set[str]:
    """Return the scripts of a label's letters (by the first word of each letter's Unicode name)."""
    found = set()
    for char in label:
        if char.isalpha():
            found.add(unicodedata.name(char, "UNKNOWN").split()[0])
    return found


# RFC 5322's dot-atom without % and !, which mail servers read as routes (user%host@relay, host!user),
# and so without quoted local parts, commas or spaces either.
PLAIN_LOCAL_PART = re.compile(r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9#$&'*+/=?^_`{|}~-]+)*\Z")
# Names that are this machine or its network, never a mailbox of a user's own (RFC 6761, RFC 6762).
LOCAL_DOMAINS = ("localhost", "local", "internal", "home.arpa", "localdomain")


def validate_mailbox(value: str) -> None:
    """Refuse an address that is not one plain, deliverable mailbox on a public domain.

    Invisible characters, a domain that mixes scripts in one label (a Cyrillic "а" in a Latin name),
    a domain that has no IDNA 2008 form, a local part our mail server cannot send to (anything but
    ASCII: SMTP without SMTPUTF8) or would route elsewhere (quoted, %, !, a comma), and a domain
    that is not a public name (localhost, a dotless name, an IP address) are refused.
    """
    if any(_is_invisible(char) for char in value):
        raise ValidationError("Enter the address without invisible characters.", code="invisible")
    local, _at, domain = value.strip().rpartition("@")
    if not local.isascii():
        raise ValidationError(
            "The part before @ must use plain letters, digits and signs like . _ + - only: we could not deliver to it.",
            code="undeliverable",
        )
    address = mailbox_address(value)
    if address is None:
        raise ValidationError("Enter a valid domain after @.", code="invalid_domain")
    local, _at, ascii_domain = address.rpartition("@")
    if ascii_domain.startswith("[") or ascii_domain.rsplit(".", 1)[-1].isdigit():
        raise ValidationError(
            "Enter an address on a domain name (like example.com), not on an IP address.", code="ip_literal"
        )
    if "." not in ascii_domain or any(
        ascii_domain == name or ascii_domain.endswith(f".{name}") for name in LOCAL_DOMAINS
    ):
        raise ValidationError(
            "Enter an address on a public domain (like example.com), not a local name such as localhost.",
            code="local_domain",
        )
    if not PLAIN_LOCAL_PART.match(local):
        raise ValidationError(
            "The part before @ cannot be quoted or hold spaces, commas, % or !: mail servers read those as routes.",
            code="routed_local_part",
        )
    try:
        # Strict IDNA 2008 for new addresses: xn-- labels must decode (no IDNA 2003 symbols or emoji).
        unicode_domain = idna.decode(ascii_domain)
    except UnicodeError:
        raise ValidationError("Enter a valid domain after @.", code="invalid_domain") from None
    for label in unicode_domain.split("."):
        if len(_scripts(label)) > 1:
            raise ValidationError(
                "The domain mixes alphabets (e.g. a Cyrillic letter among Latin ones).", code="mixed_scripts"
            )


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
