"""Receivers of the crm app: each enqueues one task and returns."""

from __future__ import annotations

from typing import Any

from crm.tasks import sync_crm_contact
from users.events import UserCreated


def sync_contact(sender: type[UserCreated], *, event: UserCreated, **kwargs: Any) -> None:
    """Enqueue the CRM sync of a new user's contact."""
    sync_crm_contact.delay(event_id=str(event.event_id))
