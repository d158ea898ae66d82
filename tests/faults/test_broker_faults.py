"""Redis down, frozen or wiped: signups still succeed, and every side effect happens exactly once."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis

from devtools.fakes import CRMResponse
from devtools.processes import wait_until
from events.models import Delivery, DeliveryAttempt
from events.sweep import last_sweep
from events.worker import HEARTBEAT_KEY, expected_queues
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


def test_redis_killed_under_load_the_same_worker_consumes_again(stack: Stack, password: str) -> None:
    # given: a worker holding unacknowledged doorbells: each CRM sync got a 503 first, and its
    # retry waits in the worker as a countdown message (kombu's restore of those on a lost
    # connection used to stop the worker: docs/upstream/kombu-restore-unacked.md)
    stack.env["EVENTS_RETRY_FIRST"] = stack.env["EVENTS_RETRY_CAP"] = "4"
    stack.crm.first_per_path = CRMResponse(status=503, body='{"error": "unavailable"}')
    worker = stack.worker().wait_for_output(" ready.")
    stack.beat()
    before = [f"before{n}@example.com" for n in range(4)]
    for email in before:
        assert stack.web.signup(email, password)[0] == 302
    broker = redis.Redis.from_url(stack.redis.url())
    wait_until(
        lambda: len(stack.crm.requests) >= len(before) and broker.hlen("unacked") > 0,
        timeout=30,
        describe=lambda: f"{stack.queues()}\n{stack.logs()}",
    )
    print(f"Redis killed with {broker.hlen('unacked')} doorbell(s) unacknowledged")
    broker.close()

    # when: Redis is SIGKILLed with signups in flight, and an empty one starts on its port
    during = [f"during{n}@example.com" for n in range(2)]
    statuses: list[int] = []
    signups = threading.Thread(target=lambda: statuses.extend(stack.web.signup(e, password)[0] for e in during))
    signups.start()
    stack.restart_redis_empty()
    signups.join(timeout=30)
    after = [f"after{n}@example.com" for n in range(2)]
    for email in after:
        assert stack.web.signup(email, password)[0] == 302

    # then: the same worker process drains everything within 30 s, each effect once
    assert statuses == [302, 302]
    try:
        assert_every_effect_done_once(stack, before + during + after, timeout=30)
    except AssertionError:
        assert worker.alive(), f"The worker exited ({worker.process.returncode}): {worker.log()[-4000:]}"
        raise
    assert worker.alive()
    assert "Unrecoverable error" not in worker.log()
    print(*(line.split("] ", 1)[-1] for line in worker.log().splitlines() if "not restored" in line), sep="\n")


def test_ten_redis_restarts_in_busy_drains_leave_every_effect_once_and_the_worker_consuming(
    stack: Stack, password: str
) -> None:
    # given: a slow mail server, so each round's drains are under way when Redis goes
    stack.smtp.delay = 0.3
    worker = stack.worker().wait_for_output(" ready.")
    stack.beat()
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    running = DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.RUNNING)
    emails: list[str] = []
    rounds: list[tuple[int, float, int, float]] = []
    for round_number in range(1, 11):
        batch = [f"r{round_number}u{n}@example.com" for n in range(3)]
        for email in batch:
            assert stack.web.signup(email, password)[0] == 302
        emails += batch
        wait_until(running.exists, timeout=30, describe=lambda: f"{stack.queues()}\n{stack.logs()}")
        point = rng.uniform(0.0, 1.5)
        time.sleep(point)
        in_flight = running.count()

        # when: Redis dies at that point of the drains and an empty one starts on its port
        stack.restart_redis_empty()
        restarted = time.monotonic()

        # then: every effect of every signup so far once, by the same worker, consuming every queue again
        assert_every_effect_done_once(stack, emails, timeout=45)
        took = time.monotonic() - restarted
        broker = redis.Redis.from_url(stack.redis.url())
        try:
            wait_until(
                lambda broker=broker: len(broker.keys(HEARTBEAT_KEY.format("*"))) >= len(expected_queues()),
                timeout=30,
                describe=worker.log,
            )
        finally:
            broker.close()
        assert worker.alive(), f"The worker exited ({worker.process.returncode}): {worker.log()[-4000:]}"
        rounds.append((round_number, point, in_flight, took))
    print(f"seed {seed}; restart, seconds into the drain, attempts running, seconds to all done:")
    print(*(f"{n:2d} {point:4.2f} {in_flight:2d} {took:5.1f}" for n, point, in_flight, took in rounds), sep="\n")
    assert "Unrecoverable error" not in worker.log()
