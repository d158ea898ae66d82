"""The users app's own receivers: Django's signals turned into the app's domain events (through services)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

from users.services import group_permissions, group_permissions_change_record

BEFORE = {"pre_add", "pre_remove", "pre_clear"}
AFTER = {"post_add", "post_remove", "post_clear"}


def record_group_permissions_change(
    sender: type[Any],
    *,
    instance: Group | Permission,
    action: str,
    reverse: bool,
    pk_set: set[int] | None,
    **kwargs: Any,
) -> None:
    """Around a change of groups' permissions (group.permissions or permission.group_set), record it per member."""
    if action in BEFORE:
        if not reverse:
            group_ids = [instance.pk]
        elif pk_set is not None:
            group_ids = sorted(pk_set)
        else:
            group_ids = list(Group.objects.filter(permissions=instance).values_list("pk", flat=True))
        # Read by the post_ signal of the same call, which Django sends right after the change.
        instance._group_permissions_before = group_permissions(group_ids=group_ids)  # type: ignore[union-attr]
    elif action in AFTER:
        before = instance.__dict__.pop("_group_permissions_before", None)
        if before is not None:
            group_permissions_change_record(before=before)
