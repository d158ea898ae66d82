"""Whoever reaches Redis, password and all: the workers take no orders and run only the project's tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Queue

from devtools.processes import wait_until
from devtools.redis_server import RedisServer
from events.broker import DEAD_LETTER_KEY, dead_letters
from events.worker import HEARTBEAT_EVERY, consumed, expected_queues
from tests.faults.conftest import Stack, assert_every_effect_done_once

pytestmark = pytest.mark.faults

REDIS_PASSWORD = "a-long-redis-password-for-the-attack-test"
SECRET = "s3cr3t-argument-marker"
PRUNE = "events.tasks.prune_deliveries"


@pytest.fixture
def guarded_stack(stack: Stack, settings: Any) -> Stack:
    """The fault stack with a Redis that wants a password, as production runs it (this process reads it too)."""
    stack.redis.stop()
    stack.redis = RedisServer(password=REDIS_PASSWORD).start()
    stack.env["REDIS_URL"] = settings.CELERY_BROKER_URL = stack.redis.url()
    return stack


@pytest.fixture
def attacker(guarded_stack: Stack) -> Iterator[Celery]:
    """A plain Celery client of the attacker's own, holding the Redis password, addressing the project's queues."""
    app = Celery("attacker", broker=guarded_stack.redis.url(), set_as_current=False)
    app.conf.task_default_queue = "default"
    app.conf.task_queues = [Queue(name, routing_key=name) for name in ["default", *expected_queues()]]
    yield app
    app.close()


def _everything_said_in_redis(stack: Stack) -> str:
    """Every list in the broker's Redis (queues, replies), as text: what a reply would have left there."""
    client = redis.Redis.from_url(stack.redis.url())
    lists = [key for key in client.keys("*") if client.type(key) == b"list" and key != DEAD_LETTER_KEY.encode()]
    return "\n".join(item.decode(errors="replace") for key in lists for item in client.lrange(key, 0, -1))


def test_remote_control_through_the_broker_neither_stops_nor_answers(
    guarded_stack: Stack, attacker: Celery, password: str
) -> None:
    # given: a worker and the sweep, a first signup done
    stack = guarded_stack
    worker = stack.worker().wait_for_output(" ready.", timeout=60)
    stack.beat()
    assert stack.web.signup("before@example.com", password)[0] == 302
    wait_until(lambda: consumed(expected_queues()) == set(expected_queues()), timeout=30, describe=stack.logs)

    # when: every command that would stop it, narrow it, slow it or read it is broadcast
    control = attacker.control
    for queue in expected_queues():
        control.cancel_consumer(queue)
    control.pool_shrink(2)
    control.autoscale(1, 1)
    control.rate_limit(PRUNE, "1/h")
    control.time_limit(PRUNE, soft=0.01, hard=0.02)
    control.revoke("00000000-0000-0000-0000-000000000000")
    control.add_consumer("attacker.queue")
    inspect = control.inspect(timeout=3)
    replies = {
        "conf": inspect.conf(with_defaults=True),
        "stats": inspect.stats(),
        "ping": control.ping(timeout=3),
        "active_queues": inspect.active_queues(),
        "cancel_consumer": control.cancel_consumer(expected_queues()[0], reply=True, timeout=3),
    }
    control.shutdown()
    sent = time.monotonic()

    # then: no worker answered, and none stopped or let a queue go (two beats later)
    assert replies == {"conf": None, "stats": None, "ping": [], "active_queues": None, "cancel_consumer": []}
    time.sleep(max(0.0, 2 * HEARTBEAT_EVERY - (time.monotonic() - sent)))
    assert worker.alive(), worker.log()[-3000:]
    assert consumed(expected_queues()) == set(expected_queues())

    # and the next signup's deliveries are all done
    assert stack.web.signup("after@example.com", password)[0] == 302
    assert_every_effect_done_once(stack, ["before@example.com", "after@example.com"])

    # and the Redis password is nowhere: not in Redis (a reply), not in what the worker printed
    assert REDIS_PASSWORD not in _everything_said_in_redis(stack)
    for process in stack.processes:
        assert REDIS_PASSWORD not in process.log(), process.argv
    assert "Canceling queue" not in worker.log() and "shutdown" not in worker.log().lower()


def test_celerys_built_ins_and_wrong_arguments_are_set_aside_and_none_runs(
    guarded_stack: Stack, attacker: Celery, password: str
) -> None:
    # given: a worker and the sweep
    stack = guarded_stack
    worker = stack.worker().wait_for_output(" ready.", timeout=60)
    stack.beat()
    sweep_queue = "events.sweep"
    consumer_queue = next(queue for queue in expected_queues() if queue != sweep_queue)
    prune = {"task": PRUNE, "args": [], "kwargs": {}, "options": {}, "subtask_type": None, "immutable": False}

    # when: the attacker sends Celery's built-ins over the prune task, and the project's tasks with
    # arguments they do not take, onto a consumer's queue and the sweep's
    for queue in (consumer_queue, sweep_queue):
        attacker.send_task("celery.starmap", args=[prune, [[], []]], queue=queue)
        attacker.send_task("celery.accumulate", args=[SECRET, 2, 3], queue=queue)
        attacker.send_task("celery.chunks", args=[prune, [[]], 1], queue=queue)
        attacker.send_task(PRUNE, args=[SECRET], queue=queue)
        attacker.send_task(PRUNE, kwargs={"older_than": SECRET}, queue=queue)
        attacker.send_task(PRUNE, link=attacker.signature("celery.accumulate", args=[SECRET]), queue=queue)
    sent = 2 * 6
    client = redis.Redis.from_url(stack.redis.url())
    wait_until(lambda: client.llen(DEAD_LETTER_KEY) >= sent, timeout=30, describe=stack.logs)
    # and users sign up meanwhile
    emails = [f"user{n}@example.com" for n in range(2)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    # then: every one set aside with its reason, its content in no reason and in no log line
    reasons = sorted(letter.reason for letter in dead_letters(client))
    assert reasons == sorted(
        2
        * [
            "not one of the project's tasks",
            "not one of the project's tasks",
            "not one of the project's tasks",
            "arguments do not fit the task",
            "arguments do not fit the task",
            "the task carries callbacks, a chain or a chord",
        ]
    )
    assert {letter.queue for letter in dead_letters(client)} == {consumer_queue, sweep_queue}
    assert_every_effect_done_once(stack, emails)
    log = worker.log()
    assert worker.alive()
    assert SECRET not in log
    # nothing of it ran: the worker never received a built-in or the prune task
    assert "Task celery." not in log
    assert f"Task {PRUNE}[" not in log
