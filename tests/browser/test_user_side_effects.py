"""As staff, a user's page answers "did this user get everything?" while a real worker does the work."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from devtools.processes import ManagedProcess, wait_until
from events.models import Delivery
from tests.browser.waiting import TIMEOUT_MS
from users.events import UserCreationSource
from users.services import user_create

pytestmark = pytest.mark.browser


def test_staff_watch_every_consumer_of_a_signup_reach_done_on_the_user_s_page(
    staff_page: Page, worker: ManagedProcess, consumer_names: list[str], password: str
) -> None:
    # given: a user just signed up; the worker is doing the side effects
    user = user_create(
        email="ann@example.com", password=password, name="Ann Lee", source=UserCreationSource.SIGNUP_FORM
    )

    # when: staff find the user by e-mail and open the user's page
    staff_page.goto("/admin/users/user/")
    staff_page.get_by_role("searchbox").fill("ann@example.com")
    staff_page.get_by_role("searchbox").press("Enter")
    staff_page.get_by_role("link", name="ann@example.com").click()

    # then: one row per consumer; reloading, every row reaches done
    rows = staff_page.locator("#side-effects tr.relay-side-effect")
    expect(rows).to_have_count(len(consumer_names), timeout=TIMEOUT_MS)

    def all_done() -> bool:
        staff_page.reload()
        return sorted(rows.evaluate_all("rows => rows.map(row => row.dataset.state)")) == ["done"] * len(consumer_names)

    wait_until(all_done, timeout=30, describe=lambda: staff_page.locator("#side-effects").inner_text())
    expect(staff_page.locator("#side-effects caption")).to_contain_text("all done")
    for name in consumer_names:
        expect(staff_page.locator(f'#side-effects tr[data-consumer="{name}"]')).to_contain_text("done")
    assert user.pk


def test_the_dashboard_shows_the_catalogue_and_the_charts(
    staff_page: Page, worker: ManagedProcess, password: str
) -> None:
    for n in range(3):
        user_create(email=f"visitor{n}@example.org", password=password, source=UserCreationSource.SIGNUP_FORM)

    wait_until(
        lambda: not Delivery.objects.exclude(status=Delivery.Status.DONE).exists(),
        timeout=30,
        describe=lambda: str(list(Delivery.objects.values_list("consumer", "status"))),
    )
    staff_page.goto("/admin/")
    staff_page.get_by_role("link", name="Event delivery dashboard").click()

    expect(staff_page.get_by_role("heading", name="Event delivery dashboard")).to_be_visible()
    expect(staff_page.locator("#consumer-crmsync_contact")).to_contain_text("crm.sync_contact")
    expect(staff_page.locator("#consumer-crmsync_contact")).to_contain_text("3 in 60 min")
    expect(staff_page.locator("svg.relay-chart")).to_have_count(3, timeout=TIMEOUT_MS)
