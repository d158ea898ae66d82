"""Waits of the browser tests: for the worker to settle deliveries, for a page to show a change."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

from devtools.processes import wait_until
from events.models import Delivery
from users.models import User

# Generous: the machine running the suite may be busy with other processes.
TIMEOUT_MS = 30_000


def wait_for_deliveries(
    *, user: User, status: str, consumer: str | None = None, timeout: float = 30.0
) -> list[Delivery]:
    """Wait until every delivery of the user's events (or of one consumer) has the status; return them."""
    deliveries = Delivery.objects.filter(event__payload__user_id=user.pk).order_by("consumer")
    if consumer is not None:
        deliveries = deliveries.filter(consumer=consumer)

    def reached() -> bool:
        statuses = list(deliveries.values_list("status", flat=True))
        return bool(statuses) and all(each == status for each in statuses)

    def describe() -> str:
        return "\n".join(f"{d.consumer}: {d.status} attempts={d.attempts} {d.last_error[-200:]!r}" for d in deliveries)

    wait_until(reached, timeout=timeout, describe=describe)
    return list(deliveries)


def reload_until(page: Page, locator: Locator, text: str, *, timeout: float = 30.0) -> None:
    """Reload the page until the locator's text is `text` (admin pages do not refresh themselves)."""

    def shows() -> bool:
        page.reload()
        return locator.inner_text().strip() == text

    wait_until(shows, timeout=timeout, describe=lambda: f"{page.url} shows {locator.inner_text().strip()!r}")
