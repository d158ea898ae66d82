"""Receivers of the audit app: each rings its consumer's doorbell and returns."""

from __future__ import annotations

from typing import Any

from audit.tasks import record_privileges_changed as record_privileges_changed_task
from audit.tasks import record_user_created as record_user_created_task
from users.events import UserCreated, UserPrivilegesChanged


def record_user_created(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the audit log's task: a new user is owed an entry."""
    record_user_created_task.ring()


def record_privileges_changed(
    sender: type[UserPrivilegesChanged], *, event: UserPrivilegesChanged, **kwargs: Any
) -> None:
    """Enqueue the audit log's task: a change of privileges is owed an entry."""
    record_privileges_changed_task.ring()
