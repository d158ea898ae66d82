from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from events.models import Delivery, DeliveryAttempt, Event
from events.registry import consumers, get_consumer
from events.replay import deliveries_for_replay, delivery_replay


class DeliveryInline(admin.TabularInline):
    """What each consumer did with the event."""

    model = Delivery
    fields = ("consumer_link", "status", "attempts", "due_at", "updated_at", "last_error_line")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="consumer")
    def consumer_link(self, delivery: Delivery) -> str:
        url = reverse("admin:events_delivery_change", args=[delivery.pk])
        return format_html('<a href="{}">{}</a>', url, delivery.consumer)

    @admin.display(description="last error")
    def last_error_line(self, delivery: Delivery) -> str:
        return _last_line(delivery.last_error)

    def has_add_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Published events, read-only: they are facts. Each lists its deliveries."""

    list_display = ("id", "name", "version", "occurred_at")
    list_filter = ("name",)
    search_fields = ("=id",)
    date_hierarchy = "occurred_at"
    readonly_fields = ("id", "name", "version", "payload", "occurred_at")
    inlines = [DeliveryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class DeliveryAttemptInline(admin.TabularInline):
    """Every attempt at the delivery, oldest first: replay adds to it, never wipes it."""

    model = DeliveryAttempt
    fields = ("number", "worker", "started_at", "finished_at", "outcome", "error_line")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "attempt history"

    @admin.display(description="error")
    def error_line(self, attempt: DeliveryAttempt) -> str:
        return _last_line(attempt.error)

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Deliveries and dead letters: see why one failed, replay one, or replay all failed of a consumer."""

    list_display = ("event", "consumer", "status", "attempts", "retries", "due_at", "updated_at", "error")
    list_filter = ("status", "consumer")
    search_fields = ("=event__id",)
    list_select_related = ("event",)
    date_hierarchy = "created_at"
    actions = ["replay_selected"]
    readonly_fields = (
        "event", "consumer", "status", "attempts", "retries", "retry_schedule", "due_at", "lease_owner",
        "lease_until", "created_at", "updated_at", "completed_at", "last_error",
    )  # fmt: skip
    inlines = [DeliveryAttemptInline]

    @admin.display(description="retry schedule")
    def retry_schedule(self, delivery: Delivery) -> str:
        try:
            return get_consumer(delivery.consumer).retry.describe()
        except KeyError:
            return "no such consumer is declared"

    @admin.display(description="last error")
    def error(self, delivery: Delivery) -> str:
        return _last_line(delivery.last_error)

    @admin.action(description="Replay the selected deliveries")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = delivery_replay(deliveries=list(queryset))
        self.message_user(
            request, f"Replayed {count} deliveries: due now (a running one finishes first).", messages.SUCCESS
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "replay-failed/<str:consumer>/",
                self.admin_site.admin_view(self.replay_failed_view),
                name="events_delivery_replay_failed",
            ),
            *super().get_urls(),
        ]

    def replay_failed_view(self, request: HttpRequest, consumer: str) -> HttpResponse:
        """Replay every dead letter of one consumer (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            return HttpResponse(status=403)
        try:
            declared = get_consumer(consumer)
        except KeyError:
            return HttpResponse(status=404)
        count = delivery_replay(deliveries=list(deliveries_for_replay(consumers=[declared], failed=True)))
        self.message_user(request, f"Replayed {count} failed deliveries of {consumer}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:events_delivery_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        summary = (
            Delivery.objects.values("consumer")
            .annotate(
                pending=Count("id", filter=Q(status=Delivery.Status.PENDING)),
                done=Count("id", filter=Q(status=Delivery.Status.DONE)),
                failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
            )
            .order_by("consumer")
        )
        # Retrying deliveries count as well: overdue is "owed and not done by now", whatever the reason.
        oldest_due = (
            Delivery.objects.filter(status=Delivery.Status.PENDING, due_at__lte=timezone.now())
            .order_by("due_at")
            .values_list("due_at", flat=True)
            .first()
        )
        extra_context = {
            **(extra_context or {}),
            "consumer_summary": list(summary),
            "declared_consumers": [declared.name for declared in consumers()],
            # Overdue for longer than a few sweep intervals means the sweep (beat) is not running.
            "overdue_seconds": None if oldest_due is None else int((timezone.now() - oldest_due).total_seconds()),
            "sweep_interval": settings.EVENTS_SWEEP_INTERVAL,
        }
        return super().changelist_view(request, extra_context=extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False
