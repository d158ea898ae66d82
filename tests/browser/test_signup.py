"""A signup in a real browser: the form, the greeting, then every side effect done by a real worker."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from devtools.fakes import SMTPSink
from devtools.processes import ManagedProcess
from events.models import Delivery
from tests.browser.waiting import TIMEOUT_MS, wait_for_deliveries
from users.models import User

pytestmark = pytest.mark.browser


def test_signup_through_the_form_greets_the_user_and_every_consumer_is_done(
    page: Page,
    worker: ManagedProcess,
    smtp_server: SMTPSink,
    consumer_names: list[str],
    password: str,
) -> None:
    # given
    page.goto("/signup/")

    # when
    page.get_by_label("E-mail address").fill("ann@example.com")
    page.get_by_label("Display name").fill("Ann Lee")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()

    # then: the home page greets the new user
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Ann Lee!", timeout=TIMEOUT_MS)
    expect(page.locator(".lead")).to_contain_text("ann@example.com")
    # and the worker did every side effect of the signup
    user = User.objects.get(email="ann@example.com")
    deliveries = wait_for_deliveries(user=user, status=Delivery.Status.DONE, timeout=30)
    assert sorted(delivery.consumer for delivery in deliveries) == sorted(consumer_names)
    assert "ann@example.com" in [message["X-Envelope-To"] for message in smtp_server.messages]


@pytest.mark.parametrize("width", [1280, 375])
def test_a_long_name_without_spaces_wraps_on_the_greeting_page(page: Page, password: str, width: int) -> None:
    # given: the longest name the signup form takes, one word
    name = "W" * User._meta.get_field("name").max_length
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/signup/")

    # when
    page.get_by_label("E-mail address").fill("long@example.com")
    page.get_by_label("Display name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password confirmation").fill(password)
    page.get_by_role("button", name="Sign up").click()

    # then: the greeting and the header show it, wrapped within the window
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {name}!", timeout=TIMEOUT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
