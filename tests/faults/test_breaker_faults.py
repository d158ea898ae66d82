"""The CRM down for a minute: the circuit opens, one probe per interval reaches it, and the backlog drains after."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from crm.models import ContactSync
from devtools.processes import wait_until
from events.models import ConsumerControl, Delivery
from tests.factories import UserCreatedFactory
from tests.faults.conftest import Stack, _state

pytestmark = pytest.mark.faults

CRM = "crm.sync_contact"
OWED = 50
OUTAGE = 60.0
PROBE_EVERY = 2.0
RECOVERY = 30.0


def circuit() -> str:
    return ConsumerControl.objects.filter(consumer=CRM).values_list("circuit", flat=True).first() or "closed"


def spent() -> dict[int, int]:
    return dict(Delivery.objects.filter(consumer=CRM).values_list("pk", "attempts_since_replay"))


def test_a_crm_down_for_a_minute_gets_one_probe_per_interval_and_every_contact_once_it_is_back(stack: Stack) -> None:
    # given: the CRM down, 50 contacts owed, a worker of two processes and the sweep
    stack.env["EVENTS_CIRCUIT_PROBE_EVERY"] = str(PROBE_EVERY)
    # The production schedule's shape: the failures before the circuit opens back off minutes, not
    # seconds; only the close (every backed-off delivery due at once) brings them back within 30 s.
    stack.env["EVENTS_RETRY_FIRST"] = "300"
    stack.env["EVENTS_RETRY_CAP"] = "3600"
    stack.crm.down = True
    down_since = time.monotonic()
    users = [UserCreatedFactory().user_id for _ in range(OWED)]
    stack.worker()
    stack.beat()

    # when: the circuit opens
    wait_until(lambda: circuit() != "closed", timeout=30, describe=lambda: f"{_state()}\n{stack.logs()}")
    opened_at = time.monotonic()
    # The batches in flight stop at their next failure (at most one each, in each worker process).
    time.sleep(1.0)
    before = len(stack.crm.requests)
    spent_open = spent()
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_since)))
    stack.crm.down = False
    back_at = time.monotonic()

    # then: at most one request per probe interval while it was open; no attempt spent, no dead letter
    while_open = [request.received_at for request in stack.crm.requests[before:] if request.received_at < back_at]
    assert len(while_open) <= (back_at - opened_at) / PROBE_EVERY + 1, while_open
    assert all(
        later - earlier >= PROBE_EVERY - 0.05 for earlier, later in zip(while_open, while_open[1:], strict=False)
    ), while_open
    assert len(while_open) >= 10  # it did probe, every interval or so
    assert spent() == spent_open
    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists(), _state()
    # and every contact synced within 30 s of the CRM's return, each exactly once
    wait_until(
        lambda: (
            ContactSync.objects.count() == OWED and not Delivery.objects.filter(consumer=CRM, status="pending").exists()
        ),
        timeout=RECOVERY,
        describe=lambda: f"{_state()}\n{stack.logs()}",
    )
    synced_in = time.monotonic() - back_at
    assert circuit() == "closed"
    after = Counter(request.path for request in stack.crm.requests if request.received_at >= back_at)
    assert after == Counter({f"/contacts/{user_id}": 1 for user_id in users})
    assert sorted(ContactSync.objects.values_list("user_id", flat=True)) == sorted(users)
    print(
        f"breaker: open after {opened_at - down_since:.1f} s, {len(while_open)} probes in {back_at - opened_at:.0f} s"
        f" open, {before} requests before, {OWED} synced {synced_in:.1f} s after the CRM came back"
    )
