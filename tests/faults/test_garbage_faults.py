"""Garbage on a queue: the worker sets it aside, raw, and goes on with the real messages."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from events.broker import DEAD_LETTER_KEY
from tests.faults.conftest import SIGNUP_CONSUMERS, Stack, assert_every_effect_done_once

pytestmark = pytest.mark.faults

# What an attacker with write access to Redis could push; each must be set aside, none may stop the worker.
SECRET = "s3cr3t-garbage-marker"


def _envelope(stack: Stack, queue: str) -> dict:
    """A real doorbell message for `queue`, as the web enqueued it (taken off the queue)."""
    client = redis.Redis.from_url(stack.redis.url())
    raw = client.rpop(queue)
    assert raw is not None, stack.queues()
    return json.loads(raw)


def _shapes(envelope: dict) -> dict[str, bytes]:
    bad_base64 = {**envelope, "body": "!!" + SECRET + "!!"}
    not_json_body = {**envelope, "body": base64.b64encode(SECRET.encode()).decode()}
    not_a_task_body = {**envelope, "body": base64.b64encode(json.dumps(SECRET).encode()).decode()}
    no_task_header = {**envelope, "headers": {"secret": SECRET}}
    unknown_task = {**envelope, "headers": {**envelope["headers"], "task": "nobody." + SECRET}}
    return {
        "raw bytes": b"\xff\x00" + SECRET.encode() + b"\x80",
        "bare JSON string": json.dumps(SECRET).encode(),
        "JSON list": json.dumps([SECRET]).encode(),
        "bad base64": json.dumps(bad_base64).encode(),
        "body not JSON": json.dumps(not_json_body).encode(),
        "body not a task's arguments": json.dumps(not_a_task_body).encode(),
        "no task header": json.dumps(no_task_header).encode(),
        "unknown task": json.dumps(unknown_task).encode(),
    }


def test_garbage_on_every_queue_is_set_aside_and_every_signup_is_done_once(stack: Stack, password: str) -> None:
    # given: a real doorbell to copy the envelope of, and every garbage shape pushed on every consumer's queue
    assert stack.web.signup("template@example.com", password)[0] == 302
    client = redis.Redis.from_url(stack.redis.url())
    queue = SIGNUP_CONSUMERS[0].queue
    shapes = _shapes(_envelope(stack, queue))
    pushed = 0
    for consumer in SIGNUP_CONSUMERS:
        for item in shapes.values():
            client.lpush(consumer.queue, item)
            pushed += 1

    # when: a worker starts, and more users sign up while it reads the garbage
    worker = stack.worker()
    stack.beat()
    emails = ["template@example.com"] + [f"after{n}@example.com" for n in range(3)]
    for email in emails[1:]:
        assert stack.web.signup(email, password)[0] == 302

    # then: every side effect happened once, the worker never stopped
    assert_every_effect_done_once(stack, emails)
    log = worker.log()
    assert worker.alive(), log[-3000:]
    assert "Unrecoverable error" not in log and "Traceback" not in log, log[-3000:]

    # and: each item is kept raw in the dead-letter list, none is logged with its content
    dead = [json.loads(item) for item in client.lrange(DEAD_LETTER_KEY, 0, -1)]
    kept = sorted(base64.b64decode(entry["raw"]) for entry in dead)
    assert kept == sorted(item for _ in SIGNUP_CONSUMERS for item in shapes.values()), dead
    assert {entry["queue"] for entry in dead} == {consumer.queue for consumer in SIGNUP_CONSUMERS}
    assert all(entry["reason"] and SECRET not in entry["reason"] for entry in dead), dead
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]
    assert log.count("Set aside an unreadable message") == pushed, log[-3000:]
