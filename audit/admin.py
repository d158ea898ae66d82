from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.models import AuditEntry
from events.api import event_link


def _user_link(user_id: int | None) -> str:
    if user_id is None:
        return "—"
    return format_html('<a href="{}">user #{}</a>', reverse("admin:users_user_change", args=[user_id]), user_id)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only for everyone, superusers included (no delete, so no bulk delete either)."""

    list_display = ("occurred_at", "action", "actor", "target_user", "source", "event", "details", "recorded_at")
    list_filter = ("action", "source")
    search_fields = ("=event_id", "=target_user_id", "=actor_id")
    search_help_text = "An event id, a user id, or (part of) the e-mail address of the user acted on."
    date_hierarchy = "occurred_at"

    @admin.display(description="actor", ordering="actor_id")
    def actor(self, entry: AuditEntry) -> str:
        return _user_link(entry.actor_id)

    @admin.display(description="target user", ordering="target_user_id")
    def target_user(self, entry: AuditEntry) -> str:
        return _user_link(entry.target_user_id)

    @admin.display(description="event", ordering="event_id")
    def event(self, entry: AuditEntry) -> str:
        return event_link(entry.event_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEntry], search_term: str
    ) -> tuple[QuerySet[AuditEntry], bool]:
        if "@" in search_term:
            # Joined through the user at query time: the log itself holds ids, never addresses.
            users = get_user_model().objects.filter(email__icontains=search_term.strip()).values("pk")
            return queryset.filter(target_user_id__in=users), False
        try:
            return super().get_search_results(request, queryset, search_term)
        except (ValidationError, ValueError):  # not an id or a UUID: nothing matches (never a 500)
            return queryset.none(), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
