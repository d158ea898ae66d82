"""The circuit breaker: counted fleet-wide on the control row, open, one probe per interval, closed by a success."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from crm.models import ContactSync
from devtools.fakes import CRMResponse, FakeCRM
from events import circuit, draining, ledger
from events.api import CircuitBreaker, RateLimited, get_consumer
from events.circuit import CircuitChanged
from events.conf import EventsSettings, problems
from events.models import ConsumerControl, Delivery, DeliveryAttempt, Event
from events.sweep import sweep
from events.testing import run_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"
THRESHOLD = 5


@pytest.fixture(autouse=True)
def _fast(settings) -> None:
    settings.EVENTS_RETRY_FIRST = 0
    settings.EVENTS_CIRCUIT_PROBE_EVERY = 1


def control() -> ConsumerControl:
    return ConsumerControl.objects.get(consumer=CRM)


def probe_now() -> None:
    """Let the next probe go (as if probe_every had passed)."""
    ConsumerControl.objects.filter(consumer=CRM).update(probe_at=timezone.now() - timedelta(seconds=1))


def owed(count: int) -> list[Delivery]:
    for _ in range(count):
        UserCreatedFactory()
    return list(Delivery.objects.filter(consumer=CRM).order_by("id"))


def open_circuit(crm: FakeCRM, count: int = THRESHOLD + 2) -> None:
    crm.down = True
    owed(count)
    draining.drain(get_consumer(CRM))
    assert control().circuit == ConsumerControl.Circuit.OPEN


def test_the_crm_and_mail_consumers_declare_a_breaker() -> None:
    for name in (CRM, "notifications.send_welcome_email", "notifications.notify_admins"):
        assert get_consumer(name).breaker == CircuitBreaker(failures=THRESHOLD)
    assert get_consumer("audit.record_user_created").breaker is None


def test_failures_of_two_drains_count_together_and_the_second_batch_stops_when_it_opens(crm: FakeCRM) -> None:
    # given: two workers each holding a batch of three, the CRM down
    crm.down = True
    owed(6)
    consumer = get_consumer(CRM)
    first = ledger.claim(consumer=CRM, owner="host-a:1:a", limit=3)
    second = ledger.claim(consumer=CRM, owner="host-b:2:b", limit=3)

    # when
    draining._drain_one_by_one(consumer, first, "host-a:1:a")
    assert (control().circuit, control().circuit_failures) == ("closed", 3)
    draining._drain_one_by_one(consumer, second, "host-b:2:b")

    # then: the fifth failure in a row (across both) opened it; the last delivery was given back unstarted
    assert len(crm.requests) == THRESHOLD
    row = control()
    assert (row.circuit, row.circuit_failures) == ("open", THRESHOLD)
    assert row.probe_at is not None and row.circuit_changed_at is not None
    unstarted = Delivery.objects.get(pk=second[-1].delivery_id)
    assert (unstarted.attempts, unstarted.lease_owner) == (0, "")
    assert not DeliveryAttempt.objects.filter(delivery=unstarted).exists()
    opened = Event.objects.get(name=CircuitChanged.name)
    assert opened.payload | {"event_id": "", "occurred_at": ""} == {
        "event_id": "",
        "occurred_at": "",
        "action": "consumer.circuit_opened",
        "consumer": CRM,
        "failures": THRESHOLD,
        "error_class": "CRMTransientError",
        "version": 1,
    }


def test_while_open_a_drain_takes_nothing_and_spends_no_attempt(crm: FakeCRM) -> None:
    open_circuit(crm)
    attempts = dict(Delivery.objects.filter(consumer=CRM).values_list("pk", "attempts"))
    ConsumerControl.objects.filter(consumer=CRM).update(probe_at=timezone.now() + timedelta(seconds=60))
    Delivery.objects.filter(consumer=CRM).update(due_at=timezone.now())

    assert draining.drain(get_consumer(CRM)) == 0
    assert run_due(CRM) == 0

    assert len(crm.requests) == THRESHOLD
    assert dict(Delivery.objects.filter(consumer=CRM).values_list("pk", "attempts")) == attempts


def test_refusals_and_quotas_are_not_counted(crm: FakeCRM, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a CRM refusing the data (400) for ten contacts, then asking to slow down for ten more
    crm.answer(*[CRMResponse(status=400, body='{"error": "bad"}')] * 10)
    owed(10)
    run_due(CRM)
    assert Delivery.objects.filter(status=Delivery.Status.FAILED).count() == 10

    def quota(event: object) -> None:
        raise RateLimited("HTTP 429", retry_after=0)

    monkeypatch.setattr("crm.tasks.crm_contact_sync", quota)
    UserCreatedFactory.create_batch(10)
    draining.drain(get_consumer(CRM))

    # then
    assert ConsumerControl.objects.filter(consumer=CRM, circuit_failures__gt=0).count() == 0
    assert not ConsumerControl.objects.exclude(circuit="closed").exists()
    assert not circuit.counts(RateLimited("429")) and circuit.counts(OSError("refused"))


def test_a_success_between_failures_resets_the_count(crm: FakeCRM) -> None:
    fails = [CRMResponse(status=503)] * (THRESHOLD - 1)
    crm.answer(*fails, CRMResponse(status=200), *fails)
    owed(2 * THRESHOLD - 1)

    draining.drain(get_consumer(CRM))

    assert len(crm.requests) == 2 * THRESHOLD - 1
    assert (control().circuit, control().circuit_failures) == ("closed", THRESHOLD - 1)


def test_one_drain_fleet_wide_takes_the_probe_and_a_failed_one_spends_no_attempt(crm: FakeCRM) -> None:
    open_circuit(crm)
    before = {row.pk: row for row in Delivery.objects.filter(consumer=CRM)}
    probe_now()

    # when: two workers' drains ask for the probe at once
    [probe] = circuit.take_probe(consumer=get_consumer(CRM), owner="host-a:1:a")
    assert circuit.take_probe(consumer=get_consumer(CRM), owner="host-b:2:b") == []
    assert control().circuit == ConsumerControl.Circuit.PROBING
    # the oldest pending delivery, due or not
    oldest = min(before.values(), key=lambda row: (row.due_at, row.pk))
    assert probe.probe and probe.delivery_id == oldest.pk
    draining._drain_one_by_one(get_consumer(CRM), [probe], "host-a:1:a")

    # then: open again, next probe in probe_every; the attempt is recorded, none of the schedule spent
    row = control()
    assert row.circuit == ConsumerControl.Circuit.OPEN
    assert 0 < (row.probe_at - timezone.now()).total_seconds() <= 1.01  # the database's clock, to its millisecond
    probed = Delivery.objects.get(pk=probe.delivery_id)
    assert probed.status == Delivery.Status.PENDING
    assert probed.attempts == oldest.attempts + 1
    assert probed.attempts_since_replay == oldest.attempts_since_replay
    assert probed.attempt_history.last().outcome == DeliveryAttempt.Outcome.RETRY
    assert len(crm.requests) == THRESHOLD + 1
    # and no further probe before the interval
    assert draining.drain(get_consumer(CRM)) == 0
    assert len(crm.requests) == THRESHOLD + 1


def test_a_long_outage_makes_no_dead_letter(crm: FakeCRM, settings) -> None:
    settings.EVENTS_RETRY_MAX_ATTEMPTS = 3
    open_circuit(crm, count=THRESHOLD)
    for _ in range(10):
        probe_now()
        draining.drain(get_consumer(CRM))

    assert len(crm.requests) == THRESHOLD + 10
    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists()


def test_a_successful_probe_closes_the_circuit_and_makes_the_backlog_due(
    crm: FakeCRM, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks
) -> None:
    open_circuit(crm)
    Delivery.objects.filter(consumer=CRM).update(due_at=timezone.now() + timedelta(hours=1))
    crm.down = False
    rings: list[dict[str, object]] = []
    monkeypatch.setattr(get_consumer(CRM), "ring", lambda **kwargs: rings.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        assert circuit.take_probe(consumer=get_consumer(CRM), owner="host-a:1:a") == []  # not due yet: an hour
        probe_now()
        draining.drain(get_consumer(CRM))

    row = control()
    assert (row.circuit, row.circuit_failures, row.probe_at) == ("closed", 0, None)
    assert {"force": True} in rings
    pending = Delivery.objects.filter(consumer=CRM, status=Delivery.Status.PENDING)
    assert pending.count() == THRESHOLD + 1
    assert not pending.filter(due_at__gt=timezone.now()).exists()
    run_due(CRM)
    assert ContactSync.objects.count() == THRESHOLD + 2
    assert not Delivery.objects.filter(consumer=CRM).exclude(status=Delivery.Status.DONE).exists()


def test_open_and_close_are_audited_as_the_breakers_never_as_an_operators(crm: FakeCRM) -> None:
    open_circuit(crm)
    crm.down = False
    probe_now()
    draining.drain(get_consumer(CRM))

    run_due("audit.record_circuit_change")

    entries = list(AuditEntry.objects.order_by("occurred_at").values_list("action", "actor_id", "source", "details"))
    opened = {"consumers": [CRM], "failures": 5, "error_class": "CRMTransientError"}
    closed = {"consumers": [CRM], "failures": 5, "error_class": ""}
    assert entries == [
        ("consumer.circuit_opened", None, "breaker", opened),
        ("consumer.circuit_closed", None, "breaker", closed),
    ]
    assert not AuditEntry.objects.filter(action__in=["consumer.paused", "consumer.resumed"]).exists()


def test_a_dead_probes_delivery_is_probed_again_after_its_lease(crm: FakeCRM, settings) -> None:
    open_circuit(crm)
    probe_now()
    [probe] = circuit.take_probe(consumer=get_consumer(CRM), owner="dead:1:x")
    # the slot lasts at least a lease: no second probe while the first one's delivery is held
    assert (control().probe_at - timezone.now()).total_seconds() > settings.EVENTS_LEASE - 1
    # its worker dies: the lease runs out, and so does the slot
    Delivery.objects.filter(pk=probe.delivery_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    probe_now()

    [again] = circuit.take_probe(consumer=get_consumer(CRM), owner="host-b:2:b")

    assert again.delivery_id == probe.delivery_id
    outcomes = list(Delivery.objects.get(pk=probe.delivery_id).attempt_history.values_list("outcome", flat=True))
    assert outcomes[-2:] == [DeliveryAttempt.Outcome.LOST, DeliveryAttempt.Outcome.RUNNING]


def test_the_sweep_rings_an_open_circuit_whose_probe_is_due_though_nothing_is_due(crm: FakeCRM) -> None:
    open_circuit(crm)
    Delivery.objects.filter(consumer=CRM).update(due_at=timezone.now() + timedelta(hours=1))
    ConsumerControl.objects.filter(consumer=CRM).update(probe_at=timezone.now() + timedelta(hours=1))
    assert CRM not in sweep()
    probe_now()
    from events.models import SweepRun

    SweepRun.objects.update(started_at=timezone.now() - timedelta(hours=1))

    assert CRM in sweep()


def test_a_healthy_drain_costs_one_conditional_update_and_writes_nothing(crm: FakeCRM) -> None:
    owed(3)
    with CaptureQueriesContext(connection) as queries:
        draining.drain(get_consumer(CRM))
    controls = [query["sql"] for query in queries if "events_consumercontrol" in query["sql"].split("FROM")[0]]

    assert len(controls) == 1 and controls[0].startswith("UPDATE")
    assert not ConsumerControl.objects.filter(consumer=CRM).exists()


def test_logs_say_open_probe_and_close_with_no_personal_data(crm: FakeCRM, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="events.circuit"):
        open_circuit(crm)
        crm.down = False
        probe_now()
        draining.drain(get_consumer(CRM))

    lines = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "events.circuit"]
    assert [level for level, _message in lines] == ["WARNING", "INFO", "INFO"]
    assert "opened after 5 transient failures" in lines[0][1] and "probing" in lines[1][1] and "closed" in lines[2][1]
    assert not any("@" in message for _level, message in lines)


def test_the_dashboard_panel_and_metrics_show_the_circuit(crm: FakeCRM, staff_client, client) -> None:
    open_circuit(crm)
    user_id = Event.objects.filter(name="user.created").values_list("user_id", flat=True).first()

    dashboard = staff_client.get(reverse("admin:events_dashboard")).content.decode()
    panel = staff_client.get(reverse("admin:users_user_change", args=[user_id])).content.decode()
    metrics = client.get("/metrics").content.decode()

    assert 'data-circuit="open">circuit open</span>' in dashboard and "next probe" in dashboard
    assert "waits for its consumer&#x27;s open circuit" in panel
    assert f'relay_consumer_circuit{{consumer="{CRM}",state="open"}} 1.0' in metrics
    assert f'relay_consumer_circuit{{consumer="{CRM}",state="closed"}} 0.0' in metrics
    assert 'relay_consumer_circuit{consumer="audit.record_user_created",state="closed"} 1.0' in metrics


def test_a_bad_probe_interval_is_a_check_error_and_a_bad_breaker_a_declaration_error() -> None:
    assert problems(EventsSettings(circuit_probe_every=0)) == ["EVENTS_CIRCUIT_PROBE_EVERY must be more than 0, not 0."]
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(failures=0)


def test_a_probe_told_to_slow_down_closes_the_circuit_and_spends_no_attempt(crm: FakeCRM) -> None:
    # given: an open circuit whose probe takes a delivery never attempted (attempts_since_replay 0)
    open_circuit(crm)
    fresh = Delivery.objects.filter(consumer=CRM, attempts=0).order_by("pk").first()
    Delivery.objects.filter(consumer=CRM).exclude(pk=fresh.pk).update(due_at=timezone.now() + timedelta(hours=1))
    Delivery.objects.filter(pk=fresh.pk).update(due_at=timezone.now() - timedelta(hours=1))
    crm.down = False
    crm.answer(CRMResponse(status=429, headers={"Retry-After": "1"}))
    probe_now()

    # when
    draining.drain(get_consumer(CRM))

    # then: the endpoint answered (a quota): closed; the delivery waits for the hold, its count untouched
    assert control().circuit == ConsumerControl.Circuit.CLOSED
    probed = Delivery.objects.get(pk=fresh.pk)
    assert (probed.status, probed.attempts, probed.attempts_since_replay, probed.lease_owner) == ("pending", 1, 0, "")
    assert probed.attempt_history.get().outcome == DeliveryAttempt.Outcome.RETRY


def test_a_probe_given_back_unstarted_keeps_its_count(crm: FakeCRM) -> None:
    open_circuit(crm)
    probe_now()
    [probe] = circuit.take_probe(consumer=get_consumer(CRM), owner="host-a:1:a")
    before = Delivery.objects.get(pk=probe.delivery_id)

    ledger.release(claims=[probe], owner="host-a:1:a")

    after = Delivery.objects.get(pk=probe.delivery_id)
    assert (after.attempts, after.attempts_since_replay) == (before.attempts - 1, before.attempts_since_replay)


def test_a_probe_failing_in_our_code_says_nothing_of_the_endpoint(crm: FakeCRM, monkeypatch) -> None:
    open_circuit(crm)
    crm.down = False
    probe_now()

    def broken(event: object) -> None:
        raise TypeError("a bug in the handler")

    monkeypatch.setattr(get_consumer(CRM), "handler", broken)
    draining.drain(get_consumer(CRM))

    assert control().circuit != ConsumerControl.Circuit.CLOSED
    assert len(crm.requests) == THRESHOLD


def test_our_own_database_errors_do_not_open_the_circuit(crm: FakeCRM, monkeypatch) -> None:
    from django.db import OperationalError

    owed(THRESHOLD + 2)

    def database_down(event: object) -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(get_consumer(CRM), "handler", database_down)
    draining.drain(get_consumer(CRM))

    assert not ConsumerControl.objects.filter(consumer=CRM).exclude(circuit=ConsumerControl.Circuit.CLOSED).exists()
    assert Delivery.objects.filter(consumer=CRM, attempts=1).count() == THRESHOLD + 2


def test_an_open_circuit_with_only_late_deliveries_expires_them_and_closes(crm: FakeCRM, monkeypatch) -> None:
    # given: an open circuit whose owed deliveries are all past their deadline
    open_circuit(crm)
    Delivery.objects.filter(consumer=CRM).update(expires_at=timezone.now() - timedelta(minutes=1))
    probe_now()

    # when
    assert draining.drain(get_consumer(CRM)) == 0

    # then: expired (not sent), and with nothing owed the circuit closes instead of alerting forever
    assert set(Delivery.objects.filter(consumer=CRM).values_list("status", flat=True)) == {"expired"}
    assert len(crm.requests) == THRESHOLD
    assert control().circuit == ConsumerControl.Circuit.CLOSED


def test_a_consumer_no_longer_declaring_a_breaker_is_not_held_by_a_circuit_left_open(crm: FakeCRM, monkeypatch) -> None:
    open_circuit(crm)
    crm.down = False
    Delivery.objects.filter(consumer=CRM).update(due_at=timezone.now())
    monkeypatch.setattr(get_consumer(CRM), "breaker", None)

    run_due(CRM)

    assert not Delivery.objects.filter(consumer=CRM, status=Delivery.Status.PENDING).exists()
