"""Business logic of the users app."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from events.api import publish
from users.events import UserCreated, UserCreationSource, UserPrivilegesChanged
from users.models import User
from users.signals import user_created, user_privileges_changed
from users.validators import canonical_email

EMAIL_TAKEN_MESSAGE = "A user with that e-mail address already exists."


def user_email_is_taken(*, email: str) -> bool:
    """Return whether a user has this e-mail address in any spelling of it (its canonical form)."""
    identity = canonical_email(email)
    return identity is not None and User.objects.alias(identity=Lower("email")).filter(identity=identity).exists()


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
