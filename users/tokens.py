"""The e-mail confirmation link's token: signed, expiring, bound to the user and the address it was sent to."""

from __future__ import annotations

from django.conf import settings
from django.core.signing import BadSignature, TimestampSigner

from users.models import User

SALT = "users.tokens.email-confirmation"


def _signer(user: User) -> TimestampSigner:
    # The address is in the salt, not in the token: the token never spells it out, and it stops
    # working if the address changes.
    return TimestampSigner(salt=f"{SALT}:{user.email.lower()}")


def email_confirmation_token_make(*, user: User) -> str:
    """Return a token that proves, until EMAIL_CONFIRMATION_TIMEOUT, that its bearer reads user's mailbox."""
    return _signer(user).sign(str(user.pk))


def email_confirmation_token_user(*, token: str) -> User | None:
    """Return the user a token was made for, or None if it is malformed, tampered with or expired."""
    pk, _, _rest = token.partition(":")
    if not (pk.isascii() and pk.isdigit()) or len(pk) > 18:
        return None
    user = User.objects.filter(pk=int(pk), is_active=True).first()
    if user is None:
        return None
    try:
        value = _signer(user).unsign(token, max_age=settings.EMAIL_CONFIRMATION_TIMEOUT)
    except BadSignature:  # SignatureExpired is one
        return None
    return user if value == str(user.pk) else None
