from django.contrib import admin
from django.http import HttpRequest

from events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Published events, read-only: they are facts."""

    list_display = ("id", "name", "version", "occurred_at")
    list_filter = ("name",)
    search_fields = ("=id",)
    date_hierarchy = "occurred_at"
    readonly_fields = ("id", "name", "version", "payload", "occurred_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False
