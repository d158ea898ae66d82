from django.contrib import admin
from django.http import HttpRequest

from crm.models import ContactSync


@admin.register(ContactSync)
class ContactSyncAdmin(admin.ModelAdmin):
    """Contacts the CRM accepted; attempts and errors are on the crm.sync_contact deliveries."""

    list_display = ("user", "response_status", "synced_at", "event_id")
    search_fields = ("=event_id", "=user__id")
    date_hierarchy = "synced_at"
    list_select_related = ("user",)
    readonly_fields = ("event_id", "user", "response_status", "synced_at", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ContactSync | None = None) -> bool:
        return False
