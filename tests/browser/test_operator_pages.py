"""The operator's pages in a real browser at 1280 px: nothing overflows, the breadcrumbs look like the admin's."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from events.models import Delivery
from users.services import user_create

pytestmark = pytest.mark.browser

BREADCRUMBS_BACKGROUND = "getComputedStyle(document.querySelector('.breadcrumbs')).backgroundColor"
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def ledger(password: str) -> None:
    """A few signups, one of whose CRM deliveries failed with a long error."""
    for index in range(3):
        user_create(email=f"signup-{index}@example.org", password=password, name=f"User {index}")
    failed = Delivery.objects.filter(consumer="crm.sync_contact").order_by("pk").first()
    error = "Traceback (most recent call last):\n  ...\nCRMTransientError: " + "the CRM did not answer in time " * 12
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED, last_error=error)


@pytest.mark.parametrize("path", ["/admin/events/delivery/dashboard/", "/admin/events/delivery/"])
def test_the_page_fits_1280_px_with_the_admin_s_breadcrumbs(staff_page: Page, ledger: None, path: str) -> None:
    # given: the admin's own look, on a stock page
    staff_page.goto("/admin/auth/group/")
    stock = staff_page.evaluate(BREADCRUMBS_BACKGROUND)

    # when
    staff_page.goto(path)

    # then
    assert staff_page.evaluate("window.innerWidth") == 1280
    assert staff_page.evaluate(OVERFLOW) <= 0
    assert staff_page.evaluate(BREADCRUMBS_BACKGROUND) == stock != "rgba(0, 0, 0, 0)"
    assert "Domain events" in staff_page.locator(".breadcrumbs").inner_text()


def test_the_deliveries_list_shows_every_column_and_the_last_error_without_scrolling(
    staff_page: Page, ledger: None
) -> None:
    staff_page.goto("/admin/events/delivery/")

    results = staff_page.locator(".results")
    assert results.evaluate("element => element.scrollWidth <= element.clientWidth")
    error = staff_page.locator("#result_list td.field-error .relay-error[title]")
    expect(error).to_contain_text("CRMTransientError: the CRM did not answer in time")
    assert error.evaluate("element => element.getBoundingClientRect().right <= window.innerWidth")
