"""Links and searches the operator's lists share: ids as links, lists searched by the user's e-mail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html


def event_link(event_id: Any, *, short: bool = False) -> str:
    """Link an event id to its page in the admin (its payload and every delivery); short shows its first 8 digits."""
    url = reverse("admin:events_event_change", args=[event_id])
    if short:
        # As a short commit hash: enough to tell rows apart, the full id in the title and on the page.
        return format_html('<a href="{}" title="{}">{}</a>', url, event_id, str(event_id)[:8])
    return format_html('<a href="{}">{}</a>', url, event_id)


def user_link(user_id: int | None) -> str:
    """Link a user id to the user's page, where every side effect for that user is listed."""
    if user_id is None:
        return "—"
    opts = get_user_model()._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[user_id])
    return format_html('<a href="{}">user #{}</a>', url, user_id)


def users_matching(term: str) -> QuerySet[Any]:
    """Return the ids of the users whose e-mail address contains term (joined at query time, never copied)."""
    return get_user_model().objects.filter(email__icontains=term.strip()).values("pk")


class SearchByUserEmail(admin.ModelAdmin):
    """An admin list searched by its own fields, or by (part of) the e-mail address of the user it names."""

    # The lookup that takes the matching users' ids, e.g. "event__user_id__in".
    user_id_lookup = "user_id__in"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> tuple[Any, bool]:
        if "@" in search_term:
            return queryset.filter(**{self.user_id_lookup: users_matching(search_term)}), False
        try:
            return super().get_search_results(request, queryset, search_term)
        except (ValidationError, ValueError):  # not an id or a UUID: nothing matches (never a 500)
            return queryset.none(), False
