from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from events.conf import events_settings
from events.models import Delivery, DeliveryAttempt, Event
from events.operations import consumer_pause, consumer_resume, deliveries_replay
from events.operator import dashboard
from events.operator.links import SearchByUserEmail, event_link, user_link
from events.operator.measures import format_moment, format_seconds, lag_seconds
from events.registry import Consumer, consumers, get_consumer
from events.replay import deliveries_for_replay, events_missing_deliveries

# What replay does to a done delivery (events.replay.deliveries_make_due, then the consumer's
# service): it runs again, and each consumer keeps one record per event id, so the effect is skipped.
REPLAYED_DONE = (
    "was done: it runs once more (one more attempt in its history), finds the consumer's record of this "
    "event and does not repeat the effect."
)


# A delivery's lane, as the list's filter and its page name it.
LANES = {False: "live (a new event)", True: "backlog (made due by a replay or a backfill)"}


class LaneFilter(admin.SimpleListFilter):
    """Filter deliveries by lane: live ones run before the backlog a replay or a backfill made."""

    title = "lane"
    parameter_name = "lane"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("live", "live"), ("backlog", "backlog")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        if self.value() in ("live", "backlog"):
            return queryset.filter(backlog=self.value() == "backlog")
        return queryset


def can_replay(request: HttpRequest) -> bool:
    """Return whether the user may replay deliveries (a permission of its own, not "change")."""
    return request.user.has_perm("events.replay_delivery")


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
class EventAdmin(SearchByUserEmail):
    """Published events, read-only: they are facts. Each lists its deliveries."""

    list_display = ("id", "name", "user_link", "occurred_at")
    list_filter = ("name",)
    search_fields = ("=id",)
    search_help_text = "An event id, or (part of) the e-mail address of the user it is about."
    date_hierarchy = "occurred_at"
    readonly_fields = ("id", "name", "version", "user_link", "payload", "occurred_at")
    inlines = [DeliveryInline]
    actions = None

    @admin.display(description="user", ordering="user_id")
    def user_link(self, event: Event) -> str:
        return user_link(event.user_id)

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
    fields = ("number", "worker", "started", "finished", "outcome", "error_line")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "attempt history"

    # Attempts are seconds apart: the admin's own datetime format stops at the minute.
    @admin.display(description="started at")
    def started(self, attempt: DeliveryAttempt) -> str:
        return format_moment(attempt.started_at)

    @admin.display(description="finished at")
    def finished(self, attempt: DeliveryAttempt) -> str:
        return format_moment(attempt.finished_at, day_of=attempt.started_at)

    @admin.display(description="error")
    def error_line(self, attempt: DeliveryAttempt) -> str:
        return _last_line(attempt.error)

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(SearchByUserEmail):
    """Deliveries and dead letters: see why one failed, replay one, or replay all failed of a consumer."""

    # Narrow columns: the last error must be readable without scrolling at 1280 px, beside both sidebars.
    list_display = ("event_short", "user_link", "consumer_name", "state", "attempts", "updated", "error")
    list_filter = ("status", "consumer", LaneFilter)
    search_fields = ("=event__id",)
    search_help_text = "An event id, or (part of) the e-mail address of the user the event is about."
    user_id_lookup = "event__user_id__in"
    list_select_related = ("event",)
    date_hierarchy = "created_at"
    actions = ["replay_selected"]
    readonly_fields = (
        "event_id_link", "user_link", "consumer", "status", "attempts", "attempts_since_replay", "retry_schedule",
        "due", "lane", "deadline", "lease_owner", "lease_until", "created_at", "updated_at", "completed_at", "lag",
        "last_error",
    )  # fmt: skip
    fields = readonly_fields
    inlines = [DeliveryAttemptInline]
    change_form_template = "admin/events/delivery/change_form.html"

    @admin.display(description="event", ordering="event_id")
    def event_id_link(self, delivery: Delivery) -> str:
        return event_link(delivery.event_id)

    @admin.display(description="event", ordering="event_id")
    def event_short(self, delivery: Delivery) -> str:
        return event_link(delivery.event_id, short=True)

    # The user id is on the event, which list_select_related joins: a link per row, no query per row.
    @admin.display(description="user", ordering="event__user_id")
    def user_link(self, delivery: Delivery) -> str:
        return user_link(delivery.event.user_id)

    @admin.display(description="consumer", ordering="consumer")
    def consumer_name(self, delivery: Delivery) -> str:
        # A line may break after each dot: a name is one long word otherwise.
        return format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in delivery.consumer.split(".")))

    @admin.display(description="status", ordering="status")
    def state(self, delivery: Delivery) -> str:
        # Only a pending delivery is due: its time goes with its status rather than in a column of dashes.
        if delivery.status != Delivery.Status.PENDING or delivery.due_at is None:
            return delivery.get_status_display()
        # A replay's or a backfill's delivery waits behind live ones: the list says which lane it is in.
        lane = " · backlog" if delivery.backlog else ""
        return format_html("{}<br><small>due {}{}</small>", delivery.get_status_display(), self.due(delivery), lane)

    @admin.display(description="lane", ordering="backlog")
    def lane(self, delivery: Delivery) -> str:
        return LANES[delivery.backlog]

    @admin.display(description="deadline", ordering="expires_at")
    def deadline(self, delivery: Delivery) -> str:
        if delivery.expires_at is None:
            return "none: it never expires"
        verb = "expired at" if delivery.status == Delivery.Status.EXPIRED else "expires at"
        return f"{verb} {format_moment(delivery.expires_at, day_of=timezone.now())}"

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, delivery: Delivery) -> str:
        # Today's times without the date: the list has no room to spare (see list_display).
        return format_moment(delivery.updated_at, day_of=timezone.now())

    @admin.display(description="retry schedule")
    def retry_schedule(self, delivery: Delivery) -> str:
        try:
            return get_consumer(delivery.consumer).retry.describe()
        except KeyError:
            return "no such consumer is declared"

    @admin.display(description="due", ordering="due_at")
    def due(self, delivery: Delivery) -> str:
        # Only a pending delivery is due; a done or failed one keeps its times in the attempt history.
        if delivery.status != Delivery.Status.PENDING or delivery.due_at is None:
            return "—"
        return format_moment(delivery.due_at, day_of=timezone.now())

    @admin.display(description="lag (commit to done)")
    def lag(self, delivery: Delivery) -> str:
        return format_seconds(lag_seconds(delivery))

    @admin.display(description="last error")
    def error(self, delivery: Delivery) -> str:
        if delivery.status == Delivery.Status.DONE or not delivery.last_error.strip():
            return ""
        # The list shows the gist; the full text is in the title (a hover) and on the delivery's page.
        line = _last_line(delivery.last_error)
        return format_html(
            '<span class="relay-error" title="{}">{}</span>', delivery.last_error.strip(), Truncator(line).chars(120)
        )

    @admin.action(description="Replay the selected deliveries", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> TemplateResponse | None:
        deliveries = list(queryset)
        done = [delivery for delivery in deliveries if delivery.status == Delivery.Status.DONE]
        if done and request.POST.get("post") != "yes":
            # Django's delete_selected shape: the same POST again, with post=yes, runs the action.
            hidden = [("action", "replay_selected"), ("post", "yes")]
            hidden += [(ACTION_CHECKBOX_NAME, str(delivery.pk)) for delivery in deliveries]
            return self._replay_confirmation(
                request, done=done, total=len(deliveries), action=request.get_full_path(), hidden=hidden
            )
        count = deliveries_replay(
            deliveries=deliveries, actor_id=request.user.pk, source="admin", scope={"selected": len(deliveries)}
        ).count
        message = f"Replayed {count} deliveries: due now (a running one finishes first)."
        if done:
            message += f" {len(done)} of them {REPLAYED_DONE}"
        self.message_user(request, message, messages.SUCCESS)
        return None

    def _replay_confirmation(
        self, request: HttpRequest, *, done: list[Delivery], total: int, action: str, hidden: list[tuple[str, str]]
    ) -> TemplateResponse:
        """Ask before replaying done deliveries: the intermediate page of Django's own delete actions."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Replay done deliveries?",
            "opts": self.opts,
            "done": done,
            "total": total,
            "form_action": action,
            "hidden": hidden,
            "back": request.POST.get("next") or reverse("admin:events_delivery_changelist"),
        }
        return TemplateResponse(request, "admin/events/delivery/replay_confirmation.html", context)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return can_replay(request)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="events_dashboard"),
            path("<int:pk>/replay/", view(self.replay_view), name="events_delivery_replay"),
            path("replay-failed/<str:consumer>/", view(self.replay_failed_view), name="events_delivery_replay_failed"),
            path("replay-since/<str:consumer>/", view(self.replay_since_view), name="events_delivery_replay_since"),
            path("pause/<str:consumer>/", view(self.pause_view), name="events_consumer_pause"),
            path("resume/<str:consumer>/", view(self.resume_view), name="events_consumer_resume"),
            *super().get_urls(),
        ]

    def _back(self, request: HttpRequest, default: str) -> HttpResponseRedirect:
        target = request.POST.get("next", "")
        allowed = url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return HttpResponseRedirect(target if target and allowed else default)

    def _consumer_for(self, request: HttpRequest, consumer: str, *, permission: str) -> Consumer | HttpResponse:
        """Return the consumer an operator's POST names, or the answer refusing it (405, 403, 404)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(permission):
            return HttpResponse("You do not have the permission to do that.", status=403)
        try:
            return get_consumer(consumer)
        except KeyError:
            return HttpResponse(status=404)

    def replay_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Replay one delivery (POST only), then go back where the button was."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_replay(request):
            return HttpResponse("You may not replay deliveries.", status=403)
        delivery = Delivery.objects.filter(pk=pk).first()
        if delivery is None:
            return HttpResponse(status=404)
        done = delivery.status == Delivery.Status.DONE
        if done and request.POST.get("confirmed") != "yes":
            hidden = [("confirmed", "yes"), ("next", request.POST.get("next", ""))]
            return self._replay_confirmation(request, done=[delivery], total=1, action=request.path, hidden=hidden)
        deliveries_replay(
            deliveries=[delivery], actor_id=request.user.pk, source="admin", scope={"delivery": delivery.pk}
        )
        message = f"Replayed {delivery.consumer} for event {delivery.event_id}: due now."
        if done:
            message += f" It {REPLAYED_DONE}"
        self.message_user(request, message, messages.SUCCESS)
        return self._back(request, reverse("admin:events_delivery_change", args=[pk]))

    def replay_failed_view(self, request: HttpRequest, consumer: str) -> HttpResponse:
        """Replay every dead letter of one consumer (POST only)."""
        declared = self._consumer_for(request, consumer, permission="events.replay_delivery")
        if isinstance(declared, HttpResponse):
            return declared
        count = deliveries_replay(
            deliveries=list(deliveries_for_replay(consumers=[declared], failed=True)),
            actor_id=request.user.pk,
            source="admin",
            scope={"failed": True},
        ).count
        self.message_user(request, f"Replayed {count} failed deliveries of {consumer}.", messages.SUCCESS)
        return self._back(request, reverse("admin:events_delivery_changelist"))

    def replay_since_view(self, request: HttpRequest, consumer: str) -> HttpResponse:
        """Replay (backfill) a consumer for the events since a date (POST only); done deliveries stay done."""
        declared = self._consumer_for(request, consumer, permission="events.replay_delivery")
        if isinstance(declared, HttpResponse):
            return declared
        try:
            day = parse_date(request.POST.get("since", ""))
        except ValueError:  # well formed, no such day (2026-02-30)
            day = None
        if day is None:
            self.message_user(request, "Give the date to replay since (YYYY-MM-DD).", messages.ERROR)
            return self._back(request, reverse("admin:events_dashboard"))
        since = timezone.make_aware(datetime.combine(day, time.min))
        count = deliveries_replay(
            deliveries=list(deliveries_for_replay(consumers=[declared], since=since)),
            missing=events_missing_deliveries(consumers=[declared], since=since),
            actor_id=request.user.pk,
            source="admin",
            scope={"since": since.isoformat()},
        ).count
        self.message_user(request, f"Replayed {count} deliveries of {consumer} since {day}.", messages.SUCCESS)
        return self._back(request, reverse("admin:events_dashboard"))

    def pause_view(self, request: HttpRequest, consumer: str) -> HttpResponse:
        """Pause a consumer (POST only): its deliveries wait until it is resumed."""
        return self._switch(request, consumer, pause=True)

    def resume_view(self, request: HttpRequest, consumer: str) -> HttpResponse:
        """Resume a paused consumer (POST only): its backlog drains."""
        return self._switch(request, consumer, pause=False)

    def _switch(self, request: HttpRequest, consumer: str, *, pause: bool) -> HttpResponse:
        declared = self._consumer_for(request, consumer, permission="events.pause_consumer")
        if isinstance(declared, HttpResponse):
            return declared
        switch = consumer_pause if pause else consumer_resume
        changed = switch(consumer=declared, actor_id=request.user.pk)
        verb = "Paused" if pause else "Resumed"
        self.message_user(request, f"{verb} {consumer}." if changed else f"{consumer} was already so.", messages.INFO)
        return self._back(request, reverse("admin:events_dashboard"))

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The catalogue of events and consumers, their state now, and charts of the last hours and days."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        context = {
            **self.admin_site.each_context(request),
            "title": "Event delivery dashboard",
            "opts": self.opts,
            "can_replay": can_replay(request),
            "can_pause": request.user.has_perm("events.pause_consumer"),
            **dashboard.overview(),
        }
        return TemplateResponse(request, "admin/events/dashboard.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        summary = (
            Delivery.objects.values("consumer")
            .annotate(
                pending=Count("id", filter=Q(status=Delivery.Status.PENDING)),
                done=Count("id", filter=Q(status=Delivery.Status.DONE)),
                failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
                expired=Count("id", filter=Q(status=Delivery.Status.EXPIRED)),
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
            "sweep_interval": events_settings().sweep_interval,
            # Failing but not yet failed for good: due later, so not overdue, yet not fine either.
            "retrying": Delivery.objects.filter(status=Delivery.Status.PENDING, attempts_since_replay__gt=0)
            .exclude(last_error="")
            .count(),
            "failed_total": sum(row["failed"] for row in summary),
            "can_replay": can_replay(request),
            # Its filters take the right; the app list on the left too would leave the last error no room at 1280 px.
            "is_nav_sidebar_enabled": False,
        }
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_replay": can_replay(request)}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # Read-only: a delivery changes by its worker, by replay or by pause, never by a form.
    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False
