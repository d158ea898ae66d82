from __future__ import annotations

import logging

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_no_404_and_logs_no_warning(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    # when
    with caplog.at_level(logging.WARNING):
        response = client.get("/favicon.ico")

    # then
    assert response.status_code == 302
    assert response["Location"] == static("img/favicon.svg")
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_the_favicon_is_a_static_file() -> None:
    assert finders.find("img/favicon.svg")


def test_pages_name_their_icon(client: Client) -> None:
    page = client.get("/").text

    assert f'<link rel="icon" href="{static("img/favicon.svg")}" type="image/svg+xml">' in page
