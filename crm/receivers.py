"""Receivers of the crm app: each rings its consumer's doorbell and returns."""

from __future__ import annotations

from typing import Any

from crm.tasks import sync_contact as sync_contact_task
from users.events import UserCreated


def sync_contact(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the CRM task: a new user's contact is owed a sync."""
    sync_contact_task.ring()
