import logging

from django.urls import reverse

from config.redaction import RedactTokensFilter, redact

TOKEN = "MTIz:1w3cQZ:Xyz-secret_Token"


def test_the_confirmation_links_token_is_redacted() -> None:
    # given
    path = reverse("users:email_confirm", kwargs={"token": TOKEN})

    # when
    line = redact(f'"GET {path} HTTP/1.1" 200')

    # then
    assert TOKEN not in line
    assert line == f'"GET {path.replace(TOKEN, "<token>")} HTTP/1.1" 200'


def test_the_reset_links_token_is_redacted_and_its_user_part_kept() -> None:
    # given
    path = reverse("users:password_reset_confirm", kwargs={"uidb64": "MQ", "token": "cz1k3x-" + "a" * 32})

    # when
    line = redact(f"Bad Request: {path}")

    # then
    assert "a" * 32 not in line
    assert line == "Bad Request: /password-reset/MQ/<token>/"


def test_paths_without_a_token_are_left_as_they_are() -> None:
    # given
    paths = [
        reverse("users:email_confirmation_resend"),
        reverse("users:password_reset"),
        reverse("users:password_reset_done"),
        reverse("users:password_reset_complete"),
        reverse("users:password_reset_confirm", kwargs={"uidb64": "MQ", "token": "set-password"}),
        "/signup/",
    ]

    # when
    lines = [redact(f"GET {path}") for path in paths]

    # then
    assert lines == [f"GET {path}" for path in paths]


def test_the_log_filter_rewrites_a_record_naming_a_token_path() -> None:
    # given
    path = reverse("users:email_confirm", kwargs={"token": TOKEN})
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s", ("Bad Request", path), None)

    # when
    kept = RedactTokensFilter().filter(record)

    # then
    assert kept
    assert record.getMessage() == "Bad Request: /confirm-email/<token>/"
