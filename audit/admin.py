from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEntry
from events.operator.api import SearchByUserEmail, event_link, user_link


@admin.register(AuditEntry)
class AuditEntryAdmin(SearchByUserEmail):
    """The audit log, read-only for everyone, superusers included (no delete, so no bulk delete either)."""

    list_display = ("occurred_at", "action", "actor", "target_user", "source", "event", "details", "recorded_at")
    list_filter = ("action", "source")
    search_fields = ("=event_id", "=target_user_id", "=actor_id")
    search_help_text = "An event id, a user id, or (part of) the e-mail address of the user acted on."
    # Joined through the user at query time: the log itself holds ids, never addresses.
    user_id_lookup = "target_user_id__in"
    date_hierarchy = "occurred_at"

    @admin.display(description="actor", ordering="actor_id")
    def actor(self, entry: AuditEntry) -> str:
        return user_link(entry.actor_id)

    @admin.display(description="target user", ordering="target_user_id")
    def target_user(self, entry: AuditEntry) -> str:
        return user_link(entry.target_user_id)

    @admin.display(description="event", ordering="event_id")
    def event(self, entry: AuditEntry) -> str:
        return event_link(entry.event_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
