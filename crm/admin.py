from django.contrib import admin
from django.http import HttpRequest

from crm.models import ContactSync


@admin.register(ContactSync)
class ContactSyncAdmin(admin.ModelAdmin):
    """CRM syncs with their status, attempts and last error."""

    list_display = ("user", "status", "attempts", "response_status", "created_at", "synced_at", "event_id")
    list_filter = ("status",)
    search_fields = ("=event_id", "=user__id")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = (
        "event_id",
        "user",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "updated_at",
        "synced_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ContactSync | None = None) -> bool:
        return False
