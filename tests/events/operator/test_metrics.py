from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from crm.backends.base import CRMPermanentError
from devtools.redis_server import free_port
from events.api import consumers, consumers_of
from events.broker import DEAD_LETTER_KEY
from events.doorbells import broker_redis
from events.ledger import prune
from events.models import ConsumerControl, Delivery, SweepRun
from events.replay import deliveries_make_due
from events.testing import run_due
from events.worker import HEARTBEAT_KEY, expected_queues, heartbeat
from tests.factories import UserCreatedFactory
from users.signals import user_created

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"
ANALYTICS = "analytics.track_signup"
CRM = "crm.sync_contact"
WELCOME = "notifications.send_welcome_email"
ADMINS = "notifications.notify_admins"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _no_dead_letters() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(DEAD_LETTER_KEY)
    yield client
    client.delete(DEAD_LETTER_KEY)


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


def by_consumer(samples: Samples, metric: str, /, **labels: str) -> dict[str, float]:
    return {declared.name: value(samples, metric, consumer=declared.name, **labels) for declared in consumers()}


def test_metrics_count_events_deliveries_and_attempts_per_consumer(
    client: Client, monkeypatch: pytest.MonkeyPatch, _no_dead_letters: redis.Redis
) -> None:
    # given: 3 signups; audit and analytics done, the CRM refusing each contact, the notifications pending
    def refused(*, event: object) -> None:
        raise CRMPermanentError("CRM answered HTTP 400", status=400)

    monkeypatch.setattr("crm.tasks.crm_contact_sync", refused)
    for _ in range(3):
        UserCreatedFactory()
    run_due(AUDIT, ANALYTICS, CRM)
    # one admin notice waits for a retry in a minute; one welcome e-mail has been due for 30 s
    waiting = Delivery.objects.filter(consumer=ADMINS).first()
    Delivery.objects.filter(pk=waiting.pk).update(due_at=timezone.now() + timedelta(minutes=1))
    late, running, _due = Delivery.objects.filter(consumer=WELCOME)
    Delivery.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(seconds=30))
    # and one is being sent by a live worker
    Delivery.objects.filter(pk=running.pk).update(
        lease_owner="w:1:x",
        lease_until=timezone.now() + timedelta(seconds=10),
        due_at=timezone.now() - timedelta(hours=1),
    )
    _no_dead_letters.lpush(DEAD_LETTER_KEY, b"garbage", b"more garbage")
    zero = {declared.name: 0.0 for declared in consumers()}
    # Any other consumer of a signup (one a new app adds) has its 3 deliveries due, untouched.
    untouched = {declared.name: 3.0 for declared in consumers_of(user_created)} | dict.fromkeys(
        (AUDIT, ANALYTICS, CRM, WELCOME, ADMINS), 0.0
    )

    # when
    samples = scrape(client)

    # then
    assert value(samples, "relay_events_total", name="user.created") == 3
    assert by_consumer(samples, "relay_deliveries_total", status="done") == {**zero, AUDIT: 3, ANALYTICS: 3}
    assert by_consumer(samples, "relay_deliveries_total", status="failed") == {**zero, CRM: 3}
    assert by_consumer(samples, "relay_deliveries_failed") == {**zero, CRM: 3}
    assert by_consumer(samples, "relay_delivery_attempts_total", outcome="done") == {**zero, AUDIT: 3, ANALYTICS: 3}
    assert by_consumer(samples, "relay_delivery_attempts_total", outcome="failed") == {**zero, CRM: 3}
    assert by_consumer(samples, "relay_delivery_attempts_total", outcome="retry") == zero
    assert by_consumer(samples, "relay_deliveries_pending", state="due") == {**zero, **untouched, WELCOME: 2, ADMINS: 2}
    assert by_consumer(samples, "relay_deliveries_pending", state="running") == {**zero, WELCOME: 1}
    assert by_consumer(samples, "relay_deliveries_pending", state="waiting") == {**zero, ADMINS: 1}
    oldest = by_consumer(samples, "relay_oldest_due_delivery_age_seconds")
    assert 30 <= oldest[WELCOME] < 40
    assert 0 <= oldest[ADMINS] < 10
    assert all(0 <= oldest[name] < 10 for name, due in untouched.items() if due)
    assert {name: age for name, age in oldest.items() if name not in {WELCOME, ADMINS} and not untouched.get(name)} == {
        name: 0 for name in zero if name not in {WELCOME, ADMINS} and not untouched.get(name)
    }
    assert value(samples, "relay_broker_dead_letters") == 2


def test_the_lag_histogram_buckets_every_completion_from_creation_to_done(client: Client) -> None:
    # given: audit deliveries created 0.2 s, 0.2 s and 100 s before they are run
    for _ in range(3):
        UserCreatedFactory()
    now = timezone.now()
    audit = list(Delivery.objects.filter(consumer=AUDIT).order_by("pk"))
    for delivery, lag in zip(audit, (0.2, 0.2, 100.0), strict=True):
        Delivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(seconds=lag))

    # when
    run_due(AUDIT)
    samples = scrape(client)

    # then: cumulative buckets, their count and the sum of the lags (a few ms of running added)
    def bucket(consumer: str, le: str) -> float:
        return value(samples, "relay_delivery_lag_seconds_bucket", consumer=consumer, le=le)

    assert [bucket(AUDIT, le) for le in ("0.1", "0.25", "60.0", "300.0", "3600.0", "+Inf")] == [0, 2, 2, 3, 3, 3]
    assert value(samples, "relay_delivery_lag_seconds_count", consumer=AUDIT) == 3
    assert value(samples, "relay_delivery_lag_seconds_sum", consumer=AUDIT) == pytest.approx(100.4, abs=0.2)
    assert value(samples, "relay_delivery_lag_seconds_count", consumer=CRM) == 0


def test_counters_never_fall_when_old_deliveries_are_pruned_or_replayed(client: Client, settings) -> None:
    # given: two signups done everywhere but the CRM
    for _ in range(2):
        UserCreatedFactory()
    run_due(AUDIT, ANALYTICS)
    before = scrape(client)

    # when: their deliveries are pruned, and one is replayed and done again
    settings.EVENTS_RETENTION_DAYS = 1
    Delivery.objects.filter(consumer=AUDIT).update(completed_at=timezone.now() - timedelta(days=2))
    assert prune() == 2
    deliveries_make_due(deliveries=Delivery.objects.filter(consumer=ANALYTICS)[:1])
    run_due(ANALYTICS)
    after = scrape(client)

    # then: every counter and histogram series is where it was or higher; the replay counted again
    counters = [
        key
        for key in before
        if key[0].endswith(("_total", "_bucket", "_count", "_sum")) and key[0] != "relay_deliveries_failed"
    ]
    assert counters and all(after[key] >= before[key] for key in counters)
    assert value(after, "relay_deliveries_total", consumer=AUDIT, status="done") == 2
    assert value(after, "relay_deliveries_total", consumer=ANALYTICS, status="done") == 3
    assert value(after, "relay_delivery_lag_seconds_count", consumer=AUDIT) == 2


def test_a_scrape_costs_the_same_few_queries_however_many_rows(client: Client, django_assert_num_queries) -> None:
    # given
    for _ in range(5):
        UserCreatedFactory()
    run_due(AUDIT)

    # when / then: the tallies, the open deliveries, the paused consumers, the sweep
    with django_assert_num_queries(4):
        scrape(client)


def test_metrics_say_which_consumers_are_paused_and_when_the_sweep_last_ran(client: Client) -> None:
    # given
    ConsumerControl.objects.create(consumer=CRM, paused=True)
    swept = timezone.now() - timedelta(seconds=30)
    SweepRun.objects.update_or_create(pk=1, defaults={"started_at": swept})

    # when
    samples = scrape(client)

    # then
    assert by_consumer(samples, "relay_consumer_paused") == {
        declared.name: 1.0 if declared.name == CRM else 0.0 for declared in consumers()
    }
    assert value(samples, "relay_sweep_last_run_timestamp_seconds") == pytest.approx(swept.timestamp())


def test_metrics_say_which_queues_a_worker_consumes(client: Client) -> None:
    # given: a worker's heartbeat for the audit queue only
    broker_redis().delete(*[HEARTBEAT_KEY.format(queue) for queue in expected_queues()])
    heartbeat(queues=[AUDIT], worker="w@test")

    # when
    samples = scrape(client)

    # then
    assert {queue: value(samples, "relay_queue_consumed", queue=queue) for queue in expected_queues()} == {
        queue: 1.0 if queue == AUDIT else 0.0 for queue in expected_queues()
    }
    broker_redis().delete(HEARTBEAT_KEY.format(AUDIT))


def test_metrics_leave_out_the_dead_letters_when_redis_does_not_answer(client: Client) -> None:
    # given
    UserCreatedFactory()

    # when
    started = time.perf_counter()
    # The dead letters are kept in the broker's Redis.
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        samples = scrape(client)
    took = time.perf_counter() - started

    # then
    assert not [name for name, _labels in samples if name.startswith("relay_broker_dead_letters")]
    assert value(samples, "relay_events_total", name="user.created") == 1
    assert took < 2


def test_metrics_want_the_bearer_token_when_one_is_set(client: Client, settings) -> None:
    # given
    settings.METRICS_TOKEN = "s3cret-token"

    # when
    statuses = [
        client.get("/metrics").status_code,
        client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code,
        client.get("/metrics", headers={"Authorization": "s3cret-token"}).status_code,
        client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code,
    ]

    # then
    assert statuses == [403, 403, 403, 200]


def test_metrics_are_not_found_where_a_token_is_required_and_none_is_set(client: Client, settings) -> None:
    # given: production's rule
    settings.METRICS_REQUIRE_TOKEN = True
    settings.METRICS_TOKEN = ""

    # when
    hidden = client.get("/metrics").status_code
    settings.METRICS_TOKEN = "s3cret-token"
    shown = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code

    # then
    assert (hidden, shown) == (404, 200)


def test_metrics_are_open_without_a_token_in_local_and_test_settings(client: Client) -> None:
    # when
    response = client.get("/metrics")

    # then
    assert response.status_code == 200
    assert b"# TYPE relay_deliveries_pending gauge" in response.content


def test_expired_deliveries_are_counted_apart_from_failures(client: Client) -> None:
    # given: two signups two days old: their admin notices expire (deadline a day), the rest run
    for _ in range(2):
        UserCreatedFactory(occurred_at=timezone.now() - timedelta(days=2))
    run_due()
    zero = {declared.name: 0.0 for declared in consumers()}

    # when
    samples = scrape(client)

    # then: expired for that consumer only; no dead letter, no failure counted
    assert by_consumer(samples, "relay_deliveries_total", status="expired") == {**zero, ADMINS: 2}
    assert by_consumer(samples, "relay_deliveries_total", status="failed") == zero
    assert by_consumer(samples, "relay_deliveries_failed") == zero
