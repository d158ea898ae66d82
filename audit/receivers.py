"""Receivers of the audit app: each rings its consumer's doorbell and returns."""

from __future__ import annotations

from typing import Any

from audit.tasks import record_operator_action as record_operator_action_task
from audit.tasks import record_privileges_changed as record_privileges_changed_task
from audit.tasks import record_user_created as record_user_created_task
from events.api import OperatorActed
from users.events import UserCreated, UserPrivilegesChanged


def record_user_created(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the audit log's task: a new user is owed an entry."""
    record_user_created_task.ring()


def record_privileges_changed(
    sender: type[UserPrivilegesChanged], *, event: UserPrivilegesChanged, **kwargs: Any
) -> None:
    """Enqueue the audit log's task: a change of privileges is owed an entry."""
    record_privileges_changed_task.ring()


def record_operator_action(sender: type[OperatorActed], *, event: OperatorActed, **kwargs: Any) -> None:
    """Enqueue the audit log's task: an operator's action is owed an entry."""
    record_operator_action_task.ring()
