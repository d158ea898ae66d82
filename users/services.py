"""Business logic of the users app."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
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
    UserPasswordSet,
    UserPrivilegesChanged,
)
from users.models import User
from users.signals import (
    user_created,
    user_email_confirmation_requested,
    user_email_confirmed,
    user_password_reset,
    user_password_reset_requested,
    user_password_set,
    user_privileges_changed,
)
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


def group_permissions(*, group_ids: Iterable[int]) -> dict[int, list[str]]:
    """Return the permission codenames ("app.codename") of each group, by group id."""
    held: dict[int, list[str]] = {group_id: [] for group_id in group_ids}
    rows = Group.permissions.through.objects.filter(group_id__in=held).values_list(
        "group_id", "permission__content_type__app_label", "permission__codename"
    )
    for group_id, app, codename in rows:
        held[group_id].append(f"{app}.{codename}")
    return {group_id: sorted(names) for group_id, names in held.items()}


@dataclass
class _GroupChanges:
    actor_id: int | None
    source: str
    before: dict[int, list[str]] = field(default_factory=dict)


# The changes of group permissions under way in this context (an admin form's save), if one is recorded whole.
_group_changes: ContextVar[_GroupChanges | None] = ContextVar("group_changes", default=None)


@contextmanager
def group_permissions_changes_recorded(*, actor: User | None, source: str = "admin") -> Iterator[None]:
    """Record the groups' permission changes made inside as one change per group, by actor, when the block ends."""
    # A form's permissions.set() removes, then adds: its members get one entry, not two.
    changes = _GroupChanges(actor_id=actor.pk if actor is not None else None, source=source)
    token = _group_changes.set(changes)
    try:
        yield
    finally:
        _group_changes.reset(token)
    group_permissions_change_record(before=changes.before, actor_id=changes.actor_id, source=changes.source)


def group_permissions_change_record(
    *, before: dict[int, list[str]], actor_id: int | None = None, source: str = "service"
) -> list[UserPrivilegesChanged]:
    """Emit UserPrivilegesChanged, on commit, to every member of each group whose permissions differ from before."""
    recording = _group_changes.get()
    if recording is not None:
        # Inside group_permissions_changes_recorded: its end records the whole change, from the first before.
        for group_id, permissions in before.items():
            recording.before.setdefault(group_id, permissions)
        return []
    after = group_permissions(group_ids=before)
    changed = {group_id for group_id in before if before[group_id] != after[group_id]}
    names = dict(Group.objects.filter(pk__in=changed).values_list("pk", "name"))
    members = User.groups.through.objects.filter(group_id__in=changed).values_list("group_id", "user_id")
    events = []
    with transaction.atomic():
        for group_id, user_id in members.order_by("group_id", "user_id"):
            name = names[group_id]
            event = UserPrivilegesChanged(
                user_id=user_id,
                actor_id=actor_id,
                changes={"group_permissions": [{name: before[group_id]}, {name: after[group_id]}]},
                source=source,
            )
            publish(signal=user_privileges_changed, event=event)
            events.append(event)
    return events


def user_password_set_record(*, user: User, actor: User | None, source: str, usable: bool) -> UserPasswordSet | None:
    """Emit UserPasswordSet, once the current transaction commits, unless the user set their own password."""
    if actor is not None and actor.pk == user.pk:
        return None
    event = UserPasswordSet(
        user_id=user.pk, actor_id=actor.pk if actor is not None else None, source=source, usable=usable
    )
    publish(signal=user_password_set, event=event)
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
    identity = canonical_email(email)
    if identity is None:
        return []
    # By its canonical form, as the login looks accounts up: any spelling the login accepts finds it.
    candidates = User.objects.alias(identity=Lower("email")).filter(identity=identity, is_active=True)
    users = [user for user in candidates if user.has_usable_password()]
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
