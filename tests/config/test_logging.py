"""Log lines that tell one story: request and event ids on every line, JSON lines in production, no PII."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from crm.backends.base import CRMPermanentError
from devtools.fakes import CRMResponse, FakeCRM
from events import logcontext
from events.api import consumers_of
from events.models import Delivery, Event
from events.sweep import sweep
from events.testing import run_due
from tests.factories import UserCreatedFactory, UserFactory
from users.signals import user_created

BASE_DIR = Path(__file__).resolve().parent.parent.parent
CRM = "crm.sync_contact"
LINE = re.compile(r"\[req=(?P<request>\S+) event=(?P<event>\S+)\] (?P<message>.*)")


@pytest.fixture(autouse=True)
def _no_ids_yet() -> Iterator[None]:
    """Start without ids: an event published by an earlier test would otherwise still tag this one's lines."""
    with logcontext.request_scope(""):
        yield


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler (its filter and formatter) writes while the test runs."""
    [handler] = [handler for handler in logging.getLogger().handlers if handler.get_name() == "console"]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def lines(console: io.StringIO) -> list[dict[str, str]]:
    return [match.groupdict() for match in map(LINE.search, console.getvalue().splitlines()) if match]


def test_a_request_gets_an_id_it_echoes_in_x_request_id(client: Client) -> None:
    response = client.get(reverse("home"))

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert client.get(reverse("home"))["X-Request-ID"] != response["X-Request-ID"]


def test_a_safe_x_request_id_from_the_caller_is_kept(client: Client) -> None:
    response = client.get(reverse("home"), headers={"X-Request-ID": "lb-7.Ab_c-42"})

    assert response["X-Request-ID"] == "lb-7.Ab_c-42"


@pytest.mark.parametrize(
    "sent",
    [
        "95dbdc25-5ceb-4ffd-ae70-2fe59ec707b6",
        "95DBDC25-5CEB-4FFD-AE70-2FE59EC707B6",
        "lb.95dbdc25-5ceb-4ffd-ae70-2fe59ec707b6",
    ],
)
def test_a_request_id_can_never_pass_for_an_event_id(client: Client, sent: str) -> None:
    response = client.get(reverse("home"), headers={"X-Request-ID": sent})

    assert response["X-Request-ID"].endswith("95dbdc255ceb4ffdae702fe59ec707b6")
    assert not logcontext.DASHED_UUID.search(response["X-Request-ID"])


@pytest.mark.parametrize("unsafe", ["two words", "x" * 65, "forged] event=x", "a\\nb", "ünï"])
def test_an_unsafe_x_request_id_is_replaced(client: Client, unsafe: str) -> None:
    response = client.get(reverse("home"), headers={"X-Request-ID": unsafe})

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_an_error_response_is_logged_once_with_its_request_id(client: Client, console: io.StringIO) -> None:
    client.get("/no-such-page/", headers={"X-Request-ID": "req-404"})

    assert [line for line in lines(console) if "Not Found" in line["message"]] == [
        {"request": "req-404", "event": "-", "message": "Not Found: /no-such-page/"}
    ]


def test_the_filter_puts_the_request_and_event_ids_on_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(logcontext.ContextFilter())
    event_id = uuid.uuid4()

    with logcontext.request_scope("req-1"):
        logging.getLogger("relay.test").warning("before")
        logcontext.event_published(event_id)
        logging.getLogger("relay.test").warning("after")
    logging.getLogger("relay.test").warning("outside")

    assert [(record.message, record.request_id, record.event_id) for record in caplog.records] == [
        ("before", "req-1", "-"),
        ("after", "req-1", str(event_id)),
        ("outside", "-", "-"),
    ]


def test_several_events_of_one_request_are_all_named() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    with logcontext.request_scope("req-2"):
        logcontext.event_published(first)
        logcontext.event_published(second)
        logcontext.event_published(first)

        assert logcontext.event_id.get() == f"{first},{second}"


def test_the_console_handler_carries_the_filter() -> None:
    assert "context" in settings.LOGGING["handlers"]["console"]["filters"]
    [handler] = [handler for handler in logging.getLogger().handlers if handler.get_name() == "console"]
    assert any(isinstance(found, logcontext.ContextFilter) for found in handler.filters)


@pytest.mark.django_db(transaction=True)
def test_a_signups_lines_carry_its_request_id_and_its_event_id(
    client: Client, console: io.StringIO, password: str
) -> None:
    # given
    data = {"email": "ann@example.com", "name": "Ann Lee", "password1": password, "password2": password}

    # when: on commit, inside the request, as in production (a transactional test)
    response = client.post(reverse("users:signup"), data, headers={"X-Request-ID": "signup-1"})

    # then
    assert response.status_code == 302
    assert response["X-Request-ID"] == "signup-1"
    event = Event.objects.get()
    assert {"request": "signup-1", "event": str(event.id), "message": f"Published {event.name} {event.id}"} in lines(
        console
    )
    assert "ann@example.com" not in console.getvalue()
    assert password not in console.getvalue()


@pytest.mark.django_db
def test_a_failing_deliverys_lines_carry_its_event_id_and_not_the_address(
    crm: FakeCRM, console: io.StringIO, settings
) -> None:
    # given: two signups; the CRM fails each once for now, then for good, echoing the address
    settings.EVENTS_RETRY_FIRST = 0
    events = [UserCreatedFactory(user_id=UserFactory(email=f"user{n}@example.com").pk) for n in range(2)]
    crm.answer(
        CRMResponse(status=503, body='{"error": "user0@example.com: busy"}'),
        CRMResponse(status=503, body='{"error": "user1@example.com: busy"}'),
    )
    crm.default = CRMResponse(status=400, body='{"error": "user0@example.com is not a contact"}')

    # when
    run_due(CRM)

    # then: each delivery's lines (its retry, its dead letter) carry its own event id, and no address
    assert set(Delivery.objects.filter(consumer=CRM).values_list("status", flat=True)) == {Delivery.Status.FAILED}
    found = lines(console)
    for event in events:
        delivery = Delivery.objects.get(consumer=CRM, event_id=event.event_id)
        about = [line for line in found if f"Delivery {delivery.pk} of {CRM}" in line["message"]]
        assert [line["event"] for line in about] == [str(event.event_id)] * 2
        assert CRMPermanentError.__name__ in about[-1]["message"]
    assert "@example.com" not in console.getvalue()


@pytest.mark.django_db
def test_a_signup_done_everywhere_leaves_one_outcome_line_per_consumer_with_its_event_id(
    console: io.StringIO, crm: FakeCRM
) -> None:
    # given
    event = UserCreatedFactory()

    # when: every consumer runs its delivery
    for declared in consumers_of(user_created):
        run_due(declared.name)

    # then: one "done" line a consumer, each with the event id, the attempt and how long it took
    about = [line for line in lines(console) if line["event"] == str(event.event_id)]
    done = [line["message"] for line in about if " done in " in line["message"]]
    assert sorted(message.split(" of ")[1].split(" ")[0] for message in done) == sorted(
        declared.name for declared in consumers_of(user_created)
    )
    assert all(re.search(r"\(user\.created\): attempt 1 done in \d+ ms$", message) for message in done), done


@pytest.mark.django_db
def test_lines_outside_any_event_carry_none(console: io.StringIO, settings) -> None:
    # given: a due delivery, rung by the sweep (no event of its own)
    settings.EVENTS_SWEEP_INTERVAL = 0
    UserCreatedFactory()
    logcontext.event_id.set(None)

    # when
    assert sweep()

    # then
    [line] = [line for line in lines(console) if line["message"].startswith("Sweep rang")]
    assert (line["request"], line["event"]) == ("-", "-")


def test_the_json_formatter_writes_one_object_a_line_with_the_ids() -> None:
    # given: a record of a failure, its message on two lines, an address in its traceback
    try:
        raise ValueError("refused bob@example.com")
    except ValueError:
        record = logging.getLogger("relay.test").makeRecord(
            "relay.test", logging.ERROR, __file__, 1, "Delivery %s failed\nfor good", (7,), sys.exc_info()
        )
    event_id = uuid.uuid4()
    with logcontext.request_scope("req-3"), logcontext.event_scope(event_id):
        logcontext.ContextFilter().filter(record)

    # when
    text = logcontext.JSONFormatter().format(record)

    # then
    assert "\n" not in text
    entry = json.loads(text)
    assert {key: entry[key] for key in ("level", "logger", "message", "request_id", "event_id")} == {
        "level": "ERROR",
        "logger": "relay.test",
        "message": "Delivery 7 failed\nfor good",
        "request_id": "req-3",
        "event_id": str(event_id),
    }
    assert entry["process"] == os.getpid()
    assert entry["time"].endswith("+00:00")
    assert "ValueError: refused <email>" in entry["exc_info"]
    assert "bob@example.com" not in text


def test_production_logs_json_lines() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": "x7#Lq9!vT2@pZ4$wR8^mN6&kB3*hJ5(yF1)cD0-eG_sA+uQ=oI",
        "DJANGO_ALLOWED_HOSTS": "relay.example.com",
        "THROTTLE_TRUSTED_PROXIES": "0",
        "REDIS_URL": "rediss://:redis-secret@redis.example.com:6380/0",
    }
    script = "import django, logging; django.setup(); logging.getLogger('relay.test').warning('hello')"

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    [entry] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (entry["level"], entry["logger"], entry["message"], entry["request_id"], entry["event_id"]) == (
        "WARNING", "relay.test", "hello", "-", "-",
    )  # fmt: skip
