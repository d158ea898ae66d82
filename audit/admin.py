from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.models import AuditEntry


def _user_link(user_id: int | None) -> str:
    if user_id is None:
        return "—"
    return format_html('<a href="{}">user #{}</a>', reverse("admin:users_user_change", args=[user_id]), user_id)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only for everyone, superusers included."""

    list_display = ("occurred_at", "action", "actor", "target_user", "source", "event_id", "recorded_at")
    list_filter = ("action", "source")
    search_fields = ("=event_id", "=target_user_id", "=actor_id")
    date_hierarchy = "occurred_at"

    @admin.display(description="actor", ordering="actor_id")
    def actor(self, entry: AuditEntry) -> str:
        return _user_link(entry.actor_id)

    @admin.display(description="target user", ordering="target_user_id")
    def target_user(self, entry: AuditEntry) -> str:
        return _user_link(entry.target_user_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
