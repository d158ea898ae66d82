from django.contrib import admin
from django.http import HttpRequest

from events.operator.api import event_link
from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Messages sent, read-only: a record of what happened."""

    list_display = ("kind", "user", "recipient", "subject", "event", "sent_at")
    list_filter = ("kind",)
    search_fields = ("=event_id", "=user__id", "user__email")
    search_help_text = "An event id, a user id, or (part of) the user's e-mail address."
    actions = None  # No bulk delete: these are records of what happened.
    date_hierarchy = "sent_at"
    list_select_related = ("user",)

    @admin.display(description="event", ordering="event_id")
    def event(self, record: Notification) -> str:
        return event_link(record.event_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False
