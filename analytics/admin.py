from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse

from analytics.models import AnalyticsEvent
from events.operator.api import event_link

SIGNUP_DAYS_SHOWN = 30


@admin.register(AnalyticsEvent)
class AnalyticsEventAdmin(admin.ModelAdmin):
    """Tracked events, read-only, with the number of signups per day above the list."""

    list_display = ("occurred_at", "name", "user", "properties", "event")
    list_filter = ("name",)
    search_fields = ("=event_id", "=user__id", "user__email")
    search_help_text = "An event id, a user id, or (part of) the user's e-mail address."
    actions = None  # No bulk delete: these are records of what happened.
    date_hierarchy = "occurred_at"
    list_select_related = ("user",)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        signups_per_day = (
            AnalyticsEvent.objects.filter(name=AnalyticsEvent.Name.USER_SIGNED_UP)
            .annotate(day=TruncDate("occurred_at"))
            .values("day")
            .annotate(signups=Count("id"))
            .order_by("-day")[:SIGNUP_DAYS_SHOWN]
        )
        extra_context = {**(extra_context or {}), "signups_per_day": list(signups_per_day)}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="event", ordering="event_id")
    def event(self, record: AnalyticsEvent) -> str:
        return event_link(record.event_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AnalyticsEvent | None = None) -> bool:
        return False
