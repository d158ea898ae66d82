from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Messages sent, read-only: a record of what happened."""

    list_display = ("kind", "user", "recipient", "subject", "event_id", "sent_at")
    list_filter = ("kind",)
    search_fields = ("=event_id", "=user__id")
    date_hierarchy = "sent_at"
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False
