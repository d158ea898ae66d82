"""The CRM failing in each way the contract names: retried when transient, dead-lettered when not."""

from __future__ import annotations

import pytest

from crm.models import ContactSync
from devtools.fakes import CRMResponse
from devtools.processes import wait_until
from events.models import Delivery
from tests.faults.conftest import CONSUMER_COUNT, Stack, assert_every_effect_done_once
from users.events import UserCreated

pytestmark = pytest.mark.faults

CRM = "crm.sync_contact"


@pytest.fixture
def running(stack: Stack) -> Stack:
    """The stack with a worker and the sweep running."""
    stack.worker()
    stack.beat()
    return stack


@pytest.mark.parametrize(
    "first_answer",
    [CRMResponse(status=500, body="internal error"), CRMResponse(delay=1.5)],
    ids=["500 then 200", "timeout then 200"],
)
def test_transient_crm_failure_is_retried_until_synced(
    running: Stack, password: str, first_answer: CRMResponse
) -> None:
    running.crm.answer(first_answer)

    assert running.web.signup("ann@example.com", password)[0] == 302

    assert_every_effect_done_once(running, ["ann@example.com"])
    assert len(running.crm.requests) == 2
    delivery = Delivery.objects.get(consumer=CRM)
    assert delivery.attempts == 2
    assert list(delivery.attempt_history.values_list("outcome", flat=True)) == ["retry", "done"]


def test_crm_429_is_retried_no_sooner_than_retry_after(running: Stack, password: str) -> None:
    running.crm.answer(CRMResponse(status=429, headers={"Retry-After": "2"}))

    assert running.web.signup("ann@example.com", password)[0] == 302

    assert_every_effect_done_once(running, ["ann@example.com"])
    first, second = running.crm.requests
    waited = second.received_at - first.received_at
    print(f"Retry-After: 2 -> retried after {waited:.2f} s")
    assert waited >= 2.0


def test_crm_400_is_a_dead_letter_until_replayed_after_the_fix(running: Stack, password: str) -> None:
    # given: the CRM rejects the contact
    running.crm.answer(CRMResponse(status=400, body='{"error": "name rejected"}'))

    # when
    assert running.web.signup("ann@example.com", password)[0] == 302

    # then: a dead letter, with the response, after one request; the other consumers are done
    wait_until(
        lambda: (
            Delivery.objects.filter(status=Delivery.Status.DONE, event__name=UserCreated.name).count()
            == CONSUMER_COUNT - 1
            and Delivery.objects.filter(consumer=CRM, status=Delivery.Status.FAILED).exists()
        ),
        timeout=30,
        describe=running.logs,
    )
    dead = Delivery.objects.get(consumer=CRM)
    assert "CRMPermanentError" in dead.last_error and "HTTP 400" in dead.last_error
    assert "name rejected" not in dead.last_error  # a CRM's body may echo the contact: never kept
    assert not ContactSync.objects.exists()
    assert len(running.crm.requests) == 1

    # when: the CRM is fixed (it answers 200 by default) and an operator replays the dead letters
    result = running.manage("replay_events", "--consumer", "crm", "--failed")

    # then
    assert result.returncode == 0, result.stderr
    assert f"Replayed 1 delivery: due now; rang {CRM}." in result.stdout
    assert_every_effect_done_once(running, ["ann@example.com"])
    assert len(running.crm.requests) == 2
