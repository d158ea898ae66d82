"""Business logic of the users app."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.api import publish
from users.events import (
    EmailConfirmationMethod,
    UserCreated,
    UserCreationSource,
    UserEmailConfirmationRequested,
    UserEmailConfirmed,
    UserPasswordReset,
    UserPasswordResetRequested,
    UserPrivilegesChanged,
)
from users.models import User
from users.signals import (
    user_created,
    user_email_confirmation_requested,
    user_email_confirmed,
    user_password_reset,
    user_password_reset_requested,
    user_privileges_changed,
)

EMAIL_TAKEN_MESSAGE = "A user with that e-mail address already exists."


def user_email_is_taken(*, email: str) -> bool:
    """Return whether a user has this e-mail address in any letter case."""
    return User.objects.filter(email__iexact=email).exists()


def user_create(
    *,
    email: str,
    password: str | None,
    name: str = "",
    source: UserCreationSource = UserCreationSource.SERVICE,
    actor: User | None = None,
    is_staff: bool = False,
    is_superuser: bool = False,
) -> User:
    """Create a user and emit UserCreated once the creating transaction commits.

    Raises ValidationError for an invalid or taken e-mail address or a weak password;
    a password of None gives the user an unusable password (no password login).
    """
    user = User(
        email=User.objects.normalize_email(email.strip()),
        name=name.strip(),
        is_staff=is_staff,
        is_superuser=is_superuser,
    )
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user)
        user.set_password(password)
    user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    if user_email_is_taken(email=user.email):
        raise ValidationError({"email": EMAIL_TAKEN_MESSAGE}, code="unique")
    try:
        with transaction.atomic():
            user.save()
            event = UserCreated(
                user_id=user.pk,
                source=source,
                actor_id=actor.pk if actor is not None else None,
                occurred_at=user.date_joined,
            )
            publish(signal=user_created, event=event)
    except IntegrityError:
        # Another request took the address between the check above and the insert.
        if user_email_is_taken(email=user.email):
            raise ValidationError({"email": EMAIL_TAKEN_MESSAGE}, code="unique") from None
        raise
    return user


PRIVILEGES = ("is_staff", "is_superuser", "groups", "user_permissions")


def user_privileges(*, user: User) -> dict[str, Any]:
    """Return what a user may do: staff and superuser status, group names, permission codenames."""
    return {
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "user_permissions": sorted(
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list("content_type__app_label", "codename")
        ),
    }


def user_privileges_change_record(
    *, user: User, actor: User | None, before: dict[str, Any]
) -> UserPrivilegesChanged | None:
    """Emit UserPrivilegesChanged, once the current transaction commits, if user's privileges differ from before."""
    after = user_privileges(user=user)
    changes = {key: [before[key], after[key]] for key in PRIVILEGES if before[key] != after[key]}
    if not changes:
        return None
    event = UserPrivilegesChanged(user_id=user.pk, actor_id=actor.pk if actor is not None else None, changes=changes)
    publish(signal=user_privileges_changed, event=event)
    return event


def user_confirm_email(*, user: User, method: EmailConfirmationMethod) -> UserEmailConfirmed | None:
    """Mark user's e-mail address confirmed and emit UserEmailConfirmed on commit; None if it already was."""
    with transaction.atomic():
        now = timezone.now()
        # Conditional on the row, not on the instance: two clicks at once confirm (and publish) once.
        confirmed = User.objects.filter(pk=user.pk, email_confirmed_at__isnull=True).update(email_confirmed_at=now)
        if not confirmed:
            user.refresh_from_db(fields=["email_confirmed_at"])
            return None
        user.email_confirmed_at = now
        event = UserEmailConfirmed(user_id=user.pk, method=method, occurred_at=now)
        publish(signal=user_email_confirmed, event=event)
    return event


def user_password_reset_request(*, email: str) -> list[UserPasswordResetRequested]:
    """Emit UserPasswordResetRequested for each active user with a usable password at this address.

    The caller answers the same whatever this finds: an unknown address is never told apart.
    """
    email = User.objects.normalize_email(email.strip())
    users = [user for user in User.objects.filter(email__iexact=email, is_active=True) if user.has_usable_password()]
    events = []
    with transaction.atomic():
        for user in users:
            event = UserPasswordResetRequested(user_id=user.pk)
            publish(signal=user_password_reset_requested, event=event)
            events.append(event)
    return events


def user_password_reset_complete(*, user: User, password: str) -> UserPasswordReset:
    """Set the password a user chose through a reset link and emit UserPasswordReset on commit.

    The link proved the mailbox, so the address is confirmed too. The password is expected
    validated (Django's SetPasswordForm does it).
    """
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        event = UserPasswordReset(user_id=user.pk)
        publish(signal=user_password_reset, event=event)
        user_confirm_email(user=user, method=EmailConfirmationMethod.PASSWORD_RESET)
    return event


def user_email_confirmation_request(*, user: User) -> UserEmailConfirmationRequested | None:
    """Emit UserEmailConfirmationRequested on commit (a new link is e-mailed); None if the address is confirmed."""
    if user.email_confirmed_at is not None:
        return None
    with transaction.atomic():
        event = UserEmailConfirmationRequested(user_id=user.pk)
        publish(signal=user_email_confirmation_requested, event=event)
    return event
