from django.contrib import admin
from django.http import HttpRequest

from crm.models import ContactSync
from events.operator.api import event_link


@admin.register(ContactSync)
class ContactSyncAdmin(admin.ModelAdmin):
    """Contacts the CRM accepted; attempts and errors are on the crm.sync_contact deliveries."""

    list_display = ("user", "response_status", "synced_at", "event")
    search_fields = ("=event_id", "=user__id", "user__email")
    search_help_text = "An event id, a user id, or (part of) the user's e-mail address."
    actions = None  # No bulk delete: these are records of what happened.
    date_hierarchy = "synced_at"
    list_select_related = ("user",)
    readonly_fields = ("event_id", "user", "response_status", "synced_at", "created_at")

    @admin.display(description="event", ordering="event_id")
    def event(self, record: ContactSync) -> str:
        return event_link(record.event_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ContactSync | None = None) -> bool:
        return False
