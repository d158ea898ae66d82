from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from config.reporting import RateLimitedAdminEmailHandler, SafeReporterFilter

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"path": "/signup/", "HTTP_HOST": "evil.example"},
        {"path": "/signup/", "data": {f"field{n}": "x" for n in range(300)}, "method": "post"},
    ],
    ids=["bad host", "too many fields"],
)
def test_what_a_client_can_trigger_at_will_mails_nobody(settings, request_kwargs: dict) -> None:
    settings.ADMINS = ["ops@example.com"]
    client = Client(raise_request_exception=False)
    method = request_kwargs.pop("method", "get")

    response = getattr(client, method)(**request_kwargs)

    assert response.status_code == 400
    assert mail.outbox == []


def test_error_mail_is_rate_limited(settings) -> None:
    settings.ADMINS = ["ops@example.com"]
    handler = RateLimitedAdminEmailHandler()
    logger = logging.getLogger("tests.reporting")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(RateLimitedAdminEmailHandler.MAX_PER_WINDOW + 5):
            logger.error("failure %s", n)
    finally:
        logger.removeHandler(handler)

    assert len(mail.outbox) == RateLimitedAdminEmailHandler.MAX_PER_WINDOW


def test_an_error_on_a_link_with_a_token_is_mailed_without_it(settings, rf) -> None:
    # given: a confirmation link's request that failed (its path and Referer carry the token)
    settings.ADMINS = ["ops@example.com"]
    token = "MTIz:1w3cQZ:SecretLookingToken"
    path = reverse("users:email_confirm", kwargs={"token": token})
    request = rf.post(path, HTTP_REFERER=f"http://testserver{path}")
    handler = RateLimitedAdminEmailHandler()
    handler.include_html = True
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "%s: %s", ("Server Error", path), None)
    record.request = request

    # when
    handler.emit(record)

    # then
    [report] = mail.outbox
    assert "/confirm-email/<token>/" in report.body
    assert token not in report.subject + report.body + report.alternatives[0].content


def test_error_reports_hide_urls_with_credentials(settings) -> None:
    settings.REDIS_URL = "redis://:s3cret@redis.internal:6379/0"

    shown = SafeReporterFilter().get_safe_settings()

    assert "s3cret" not in repr(shown["REDIS_URL"])
    assert "s3cret" not in repr(shown.get("CELERY_BROKER_URL", ""))
    assert "s3cret" not in repr(shown["DATABASES"])


def test_a_body_over_the_cap_is_refused_before_it_is_read(settings, client: Client) -> None:
    settings.REQUEST_BODY_MAX_BYTES = 1024

    response = client.post("/signup/", data={"email": "x" * 2000})

    assert response.status_code == 413


def test_a_file_part_is_refused_even_under_the_cap(client: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/signup/", data={"email": "ann@example.com", "avatar": SimpleUploadedFile("a.txt", b"x")})

    assert response.status_code == 400
