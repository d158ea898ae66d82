"""A dead letter replayed from the admin in a real browser, then done by a real worker."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from crm.tasks import sync_contact
from devtools.fakes import CRMResponse, FakeCRM
from devtools.processes import ManagedProcess
from events.models import Delivery
from tests.browser.waiting import TIMEOUT_MS, reload_until, wait_for_deliveries
from users.services import user_create

pytestmark = pytest.mark.browser


def test_failed_crm_delivery_replayed_from_the_admin_reaches_done(
    staff_page: Page,
    worker: ManagedProcess,
    crm_server: FakeCRM,
    password: str,
) -> None:
    # given: the CRM rejects every contact (a 400 is permanent: a dead letter at once), then heals
    page = staff_page
    crm_server.default = CRMResponse(status=400, body='{"error": "rejected"}')
    user = user_create(email="bob@example.com", password=password, name="Bob Ray")
    [failed] = wait_for_deliveries(user=user, consumer=sync_contact.name, status=Delivery.Status.FAILED)
    crm_server.default = CRMResponse()

    # when: staff filter the deliveries to the failed ones and replay it with the action
    page.goto("/admin/events/delivery/")
    page.locator("#changelist-filter").get_by_role("link", name=Delivery.Status.FAILED.label).click()
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1, timeout=TIMEOUT_MS)
    expect(row.locator("td.field-consumer_name")).to_have_text(sync_contact.name)
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label="Replay the selected deliveries")
    page.locator("#changelist-form button[name=index]").click()  # "Run" (Django ≥ 6), "Go" before
    expect(page.locator("ul.messagelist")).to_contain_text("Replayed 1 deliveries", timeout=TIMEOUT_MS)

    # then: the delivery's page shows it done, and the CRM got the contact
    page.goto(f"/admin/events/delivery/{failed.pk}/change/")
    reload_until(page, page.locator(".field-status .readonly"), Delivery.Status.DONE.label, timeout=30)
    failed.refresh_from_db()
    assert failed.status == Delivery.Status.DONE
    assert [request.path for request in crm_server.requests] == [f"/contacts/{user.pk}"] * 2
