from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse

from analytics.models import AnalyticsEvent

SIGNUP_DAYS_SHOWN = 30


@admin.register(AnalyticsEvent)
class AnalyticsEventAdmin(admin.ModelAdmin):
    """Tracked events, read-only, with the number of signups per day above the list."""

    list_display = ("occurred_at", "name", "user", "properties", "event_id")
    list_filter = ("name",)
    search_fields = ("=event_id", "=user__id")
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AnalyticsEvent | None = None) -> bool:
        return False
