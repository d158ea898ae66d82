"""Flow control kept in the broker's Redis: the rate limits' buckets, the holds, the concurrency slots."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from crm.backends import get_backend
from crm.backends.base import Contact, CRMRateLimited
from devtools.fakes import CRMResponse, FakeCRM, running_smtp
from devtools.redis_server import free_port
from events import draining, flow
from events.api import Rate, RateLimited, consumers, get_consumer, rate_setting
from events.checks import rate_limit_errors
from events.leases import renewer
from events.models import Delivery, DeliveryAttempt
from events.registry import Consumer
from notifications.services import MailRateLimited, _rate_limited, admin_notice_send, welcome_email_send
from tests.factories import UserCreatedFactory

CRM = "crm.sync_contact"
AUDIT = "audit.record_user_created"
WELCOME = "notifications.send_welcome_email"
ADMINS = "notifications.notify_admins"
TEN_PER_SECOND = Rate.parse("10/s")
HUNDRED_PER_SECOND = Rate.parse("100/s")


def bucket(name: str = "test-bucket") -> str:
    return name


# -- The bucket --------------------------------------------------------------------------------------


def test_a_bucket_grants_its_burst_then_says_how_long_to_wait() -> None:
    first = flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25)
    second = flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25)

    # 100 ms of the rate at once (10), then nothing until the next interval (10 ms)
    assert (first.granted, first.wait) == (10, 0)
    assert second.granted == 0
    assert 0 < second.wait <= 0.011


def test_a_slow_rate_grants_one_at_a_time_spaced_by_its_interval() -> None:
    assert flow.acquire(bucket=bucket(), rate=TEN_PER_SECOND, want=25).granted == 1
    refused = flow.acquire(bucket=bucket(), rate=TEN_PER_SECOND, want=25)
    assert refused.granted == 0 and 0.09 <= refused.wait <= 0.101

    time.sleep(refused.wait)

    assert flow.acquire(bucket=bucket(), rate=TEN_PER_SECOND, want=25).granted == 1


def test_a_bucket_never_grants_more_than_asked() -> None:
    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=3).granted == 3
    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25).granted == 7


def test_what_a_drain_did_not_claim_is_refunded() -> None:
    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25).granted == 10

    flow.refund(bucket=bucket(), rate=HUNDRED_PER_SECOND, count=10)

    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25).granted == 10


def test_two_clients_of_one_redis_share_one_bucket() -> None:
    # given: a second client, as another worker process on another machine has
    other = redis.Redis.from_url(settings.CELERY_BROKER_URL).register_script(flow._ACQUIRE)
    keys = [flow.RATE_KEY.format(bucket()), flow.HOLD_KEY.format(bucket())]
    args = [HUNDRED_PER_SECOND.interval, flow.burst(HUNDRED_PER_SECOND), 25]

    # when: this process takes the burst
    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25).granted == 10

    # then: the other gets nothing now
    granted, wait_ms = other(keys=keys, args=args)
    assert granted == 0 and wait_ms > 0


def test_consumers_naming_one_bucket_share_its_limit(settings) -> None:
    settings.EMAIL_RATE_LIMIT = "10/s"
    welcome, admins = get_consumer(WELCOME), get_consumer(ADMINS)
    assert welcome.bucket == admins.bucket == "email"

    assert flow.admit(consumer=welcome, owner="a", want=25).granted == 1
    assert flow.acquire(bucket=admins.bucket, rate=TEN_PER_SECOND, want=25).granted == 0


def test_a_held_bucket_grants_nothing_until_the_hold_ends() -> None:
    assert flow.hold(bucket=bucket(), seconds=0.3) == pytest.approx(0.3, abs=0.01)

    held = flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25)
    assert held.granted == 0 and 0.25 <= held.wait <= 0.3
    # a shorter hold never shortens a longer one
    assert flow.hold(bucket=bucket(), seconds=0.05) > 0.2

    time.sleep(held.wait + 0.01)

    assert flow.acquire(bucket=bucket(), rate=HUNDRED_PER_SECOND, want=25).granted == 10


# -- The concurrency slots ------------------------------------------------------------------------------


def test_a_consumer_has_at_most_its_cap_of_slots_and_a_turned_away_drain_is_rung_for() -> None:
    assert flow.take_slot(consumer="c", owner="a", cap=2, lease=5)
    assert flow.take_slot(consumer="c", owner="b", cap=2, lease=5)
    assert not flow.take_slot(consumer="c", owner="c", cap=2, lease=5)

    # freeing a slot says a drain was turned away meanwhile (its freer rings), once
    assert flow.free_slot(consumer="c", owner="a") is True
    assert flow.take_slot(consumer="c", owner="c", cap=2, lease=5)
    assert flow.free_slot(consumer="c", owner="b") is False


def test_a_dead_drains_slot_lapses_after_its_lease_and_a_live_one_is_renewed() -> None:
    assert flow.take_slot(consumer="c", owner="dead", cap=2, lease=0.3)
    assert flow.take_slot(consumer="c", owner="live", cap=2, lease=0.3)

    time.sleep(0.2)
    assert flow.renew_slots(consumer="c", owners=["live"], lease=0.3) == 1
    time.sleep(0.15)

    # the dead one's lapsed, the renewed one's still held
    assert flow.take_slot(consumer="c", owner="new", cap=2, lease=5)
    assert not flow.take_slot(consumer="c", owner="other", cap=2, lease=5)


# -- Admission: what a drain may claim ---------------------------------------------------------------------


def test_an_unlimited_consumer_makes_no_redis_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_redis() -> None:
        raise AssertionError("an unlimited consumer asked Redis")

    monkeypatch.setattr(flow, "broker_redis", no_redis)

    assert flow.admit(consumer=get_consumer(AUDIT), owner="a", want=25) is None
    monkeypatch.undo()  # before the suite's own clean-up asks Redis


def test_a_limited_consumer_is_granted_nothing_when_redis_does_not_answer(settings) -> None:
    settings.CRM_RATE_LIMIT = "10/s"
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        permit = flow.admit(consumer=get_consumer(CRM), owner="a", want=25)

    assert permit is not None and permit.granted == 0


def test_an_invalid_rate_setting_grants_nothing(settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.CRM_RATE_LIMIT = "ten a second"

    permit = flow.admit(consumer=get_consumer(CRM), owner="a", want=25)

    assert permit is not None and permit.granted == 0
    assert "does not parse" in caplog.text


def test_a_short_wait_is_slept_before_claiming_a_long_one_rings_once_later(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CRM_RATE_LIMIT = "10/s"
    crm = get_consumer(CRM)
    rings: list[float | None] = []
    monkeypatch.setattr(Consumer, "ring", lambda self, countdown=None, force=False: rings.append(countdown))
    assert flow.admit(consumer=crm, owner="a", want=25).granted == 1

    started = time.monotonic()
    assert flow.admit(consumer=crm, owner="b", want=25).granted == 1
    assert 0.08 <= time.monotonic() - started < 0.5  # slept ~one interval, holding no lease
    assert rings == []

    flow.hold(bucket=crm.bucket, seconds=2)
    assert flow.admit(consumer=crm, owner="c", want=25).granted == 0
    assert flow.admit(consumer=crm, owner="d", want=25).granted == 0
    assert len(rings) == 1 and 1.9 <= rings[0] <= 2.2  # one ring at the hold's end for both


# -- The drain ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rate_limited_drain_claims_only_what_it_was_granted(settings) -> None:
    settings.CRM_RATE_LIMIT = "10/s"
    for _ in range(3):
        UserCreatedFactory()

    assert draining.drain(get_consumer(CRM)) == 1

    # one claimed (one attempt), the other two not touched
    assert DeliveryAttempt.objects.filter(delivery__consumer=CRM).count() == 1
    assert Delivery.objects.filter(consumer=CRM, status=Delivery.Status.PENDING, attempts=0).count() == 2


@pytest.mark.django_db
def test_a_drain_refunds_what_it_was_granted_and_did_not_claim(settings) -> None:
    settings.CRM_RATE_LIMIT = "100/s"
    for _ in range(3):
        UserCreatedFactory()

    assert draining.drain(get_consumer(CRM)) == 3

    assert flow.acquire(bucket=CRM, rate=HUNDRED_PER_SECOND, want=25).granted >= 7  # without the refund: 1 or 2


@pytest.mark.django_db
def test_a_drain_without_a_free_slot_claims_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    UserCreatedFactory()
    crm = get_consumer(CRM)
    assert crm.concurrency is not None
    for index in range(crm.concurrency):
        assert flow.take_slot(consumer=CRM, owner=f"other-{index}", cap=crm.concurrency, lease=30)

    assert draining.drain(crm) == 0

    assert Delivery.objects.get(consumer=CRM).attempts == 0
    # the drain holding a slot rings as it frees it
    rings: list[bool] = []
    monkeypatch.setattr(Consumer, "ring", lambda self, countdown=None, force=False: rings.append(force))
    flow.Permit(consumer=crm, owner="other-0", granted=1, rate=None, slot=True).close()
    assert rings == [True]


@pytest.mark.django_db
def test_a_drain_frees_its_slot_when_it_ends() -> None:
    UserCreatedFactory()

    assert draining.drain(get_consumer(CRM)) == 1

    assert flow.broker_redis().zcard(flow.SLOTS_KEY.format(CRM)) == 0


@pytest.mark.django_db
def test_a_limited_drain_claims_nothing_while_redis_is_down(settings) -> None:
    UserCreatedFactory()

    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        assert draining.drain(get_consumer(CRM)) == 0

    assert Delivery.objects.get(consumer=CRM).attempts == 0


@pytest.mark.django_db
def test_a_429_slows_the_whole_consumer_without_spending_an_attempt(
    crm: FakeCRM, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # given: three contacts owed; the CRM's quota refuses the second with Retry-After: 2
    users = [UserCreatedFactory() for _ in range(3)]
    crm.answer(CRMResponse(), CRMResponse(status=429, headers={"Retry-After": "2"}))

    # when
    with caplog.at_level(logging.WARNING, logger="events.draining"):
        assert draining.drain(get_consumer(CRM)) == 2

    # then: the first synced; the second given back due in 2 s, its attempt recorded but not counted
    assert len(crm.requests) == 2
    refused = Delivery.objects.get(consumer=CRM, event_id=users[1].event_id)
    assert (refused.status, refused.attempts, refused.attempts_since_replay) == (Delivery.Status.PENDING, 1, 0)
    assert list(refused.attempt_history.values_list("outcome", flat=True)) == [DeliveryAttempt.Outcome.RETRY]
    assert "CRMRateLimited" in refused.last_error
    # the third released unstarted: no attempt at all
    untouched = Delivery.objects.get(consumer=CRM, event_id=users[2].event_id)
    assert (untouched.attempts, untouched.lease_owner, untouched.attempt_history.count()) == (0, "", 0)
    # the whole consumer is held fleet-wide until the Retry-After
    held = flow.acquire(bucket=CRM, rate=TEN_PER_SECOND, want=25)
    assert held.granted == 0 and 1.5 <= held.wait <= 2.0
    assert draining.drain(get_consumer(CRM)) == 0
    assert len(crm.requests) == 2
    # said in the log (the reason, no address) and counted in /metrics
    [line] = [record.getMessage() for record in caplog.records if "slowed down" in record.getMessage()]
    assert f"{CRM} slowed down for 2.0 s (HTTP 429)" in line
    assert "@" not in line
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").content.decode())
        for sample in family.samples
    }
    assert samples[("relay_consumer_slowed_down_total", (("consumer", CRM),))] == 1
    assert samples[("relay_consumer_slowed_down_total", (("consumer", AUDIT),))] == 0


def test_the_crm_backend_says_429_is_a_rate_limit(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=429, headers={"Retry-After": "3"}))
    contact = Contact(user_id=1, email="ann@example.com", name="Ann", signed_up_at=datetime.now(UTC))

    with pytest.raises(CRMRateLimited) as raised:
        get_backend().upsert_contact(contact, idempotency_key="k")

    assert (raised.value.status, raised.value.retry_after, raised.value.reason) == (429, 3.0, "HTTP 429")


def test_rate_setting_reads_the_setting_when_used(settings) -> None:
    declared = rate_setting("CRM_RATE_LIMIT")
    settings.CRM_RATE_LIMIT = ""
    assert declared.resolve() is None
    settings.CRM_RATE_LIMIT = "600/min"
    assert declared.resolve() == Rate(count=600, per=60.0)


# -- Where an operator sees it, and a bad setting ---------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_shows_each_consumers_rate_limit(staff_client: Client, settings) -> None:
    settings.CRM_RATE_LIMIT = "10/s"
    settings.EMAIL_RATE_LIMIT = ""

    page = staff_client.get(reverse("admin:events_dashboard")).content.decode()

    assert "at most 10/s from CRM_RATE_LIMIT, 4 at once" in page
    assert "no rate limit (EMAIL_RATE_LIMIT unset)" in page


def test_a_rate_setting_that_does_not_parse_fails_the_check_naming_it(settings) -> None:
    settings.EMAIL_RATE_LIMIT = "fast"

    errors = rate_limit_errors(declared=consumers())

    assert {error.id for error in errors} == {"events.E020"}
    assert len(errors) == 4  # the four notifications consumers
    assert all(error.msg.startswith("EMAIL_RATE_LIMIT ") for error in errors)
    settings.EMAIL_RATE_LIMIT = "600/min"
    assert rate_limit_errors(declared=consumers()) == []


def test_the_lease_keeper_renews_a_drains_slot_with_its_leases(settings) -> None:
    settings.EVENTS_LEASE_RENEW_EVERY = 0.05
    renewed = threading.Event()

    with renewer.held("flow-test-owner", also=renewed.set):
        assert renewed.wait(timeout=5)


def test_an_smtp_too_many_reply_is_a_rate_limit_naming_no_address() -> None:
    assert isinstance(MailRateLimited("mail server slowed us down (451)", code=451), RateLimited)
    assert _rate_limited(451, b"4.7.1 too many messages, slow down")
    assert _rate_limited(421, "4.7.0 Try again later, closing connection: rate limit exceeded")
    assert _rate_limited(450, "4.2.1 you are being throttled")
    assert not _rate_limited(451, "4.3.0 try again later")  # a deferral, not the provider's quota
    assert not _rate_limited(550, "too many recipients")  # permanent


@pytest.mark.django_db
def test_the_mail_services_raise_a_rate_limit_on_a_too_many_reply(settings) -> None:
    with running_smtp() as sink:
        sink.rate_limit = (1, 60.0)
        settings.MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": sink.port, "timeout": 5},
            }
        }
        settings.ADMIN_EMAILS = ["ops@example.com", "founders@example.com"]
        first, second = UserCreatedFactory(), UserCreatedFactory()
        welcome_email_send(event=first)

        with pytest.raises(MailRateLimited) as raised:
            welcome_email_send(event=second)
        with pytest.raises(MailRateLimited):
            admin_notice_send(event=second)

    assert (raised.value.reason, sink.rate_refused) == ("SMTP 451", 2)  # the admins' loop stopped at the first
    assert "@" not in str(raised.value)
