"""Redis down, frozen or wiped: signups still succeed, and every side effect happens exactly once."""

from __future__ import annotations

import pytest

from devtools.processes import wait_until
from events.models import Delivery
from events.sweep import last_sweep
from tests.faults.conftest import CONSUMER_COUNT, Stack, assert_every_effect_done_once

pytestmark = pytest.mark.faults

# A signup's own cost here is tens of milliseconds; a stuck publish would add seconds.
SIGNUP_GUARD = 2.5


def test_signups_while_redis_is_down_are_done_once_it_is_back(stack: Stack, password: str) -> None:
    # given: the web is up and has already talked to Redis
    baseline_status, baseline = stack.web.signup("before@example.com", password)
    assert baseline_status == 302

    # when: Redis goes away during signups
    stack.redis.kill()
    results = [stack.web.signup(f"down{n}@example.com", password) for n in range(3)]

    # then: every signup succeeded at once, its deliveries owed
    print(f"signup with Redis up {baseline * 1000:.0f} ms; down {[f'{s * 1000:.0f} ms' for _, s in results]}")
    assert [status for status, _ in results] == [302, 302, 302]
    assert all(seconds < SIGNUP_GUARD for _, seconds in results), results
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 4 * CONSUMER_COUNT

    # when: Redis comes back (empty), with a worker and the sweep
    stack.restart_redis_empty()
    stack.worker()
    stack.beat()

    # then
    assert_every_effect_done_once(
        stack, ["before@example.com", "down0@example.com", "down1@example.com", "down2@example.com"]
    )


def test_signups_while_redis_is_frozen_are_done_once_it_thaws(stack: Stack, password: str) -> None:
    stack.web.signup("warmup@example.com", password)
    # Worker and beat already connected, as in production: a Celery process that connects
    # while Redis is frozen can stay deaf after it thaws (see the reliability notes).
    stack.worker().wait_for_output(" ready.")
    swept_before = last_sweep()
    stack.beat()
    # Beat has talked to Redis once a sweep it sent has run (its "Sending due task" line for the
    # sweep is kept out of the console, events/logfilters.py).
    wait_until(lambda: last_sweep() not in (None, swept_before), timeout=30, describe=stack.logs)

    stack.freeze_redis()
    try:
        results = [stack.web.signup(f"frozen{n}@example.com", password) for n in range(2)]
    finally:
        stack.thaw_redis()

    print(f"signup with Redis frozen: {[f'{s * 1000:.0f} ms' for _, s in results]}")
    assert [status for status, _ in results] == [302, 302]
    assert all(seconds < SIGNUP_GUARD for _, seconds in results), results
    assert_every_effect_done_once(stack, ["warmup@example.com", "frozen0@example.com", "frozen1@example.com"])


def test_redis_restarted_empty_with_messages_queued(stack: Stack, password: str) -> None:
    # given: signups enqueued while no worker runs
    emails = [f"queued{n}@example.com" for n in range(3)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    # when: Redis restarts empty, losing every queued message
    stack.restart_redis_empty()
    stack.worker()
    stack.beat()

    # then
    assert_every_effect_done_once(stack, emails)
