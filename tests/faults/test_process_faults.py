"""Processes dying at the worst moment: after COMMIT, mid-task, or twice at once on one delivery."""

from __future__ import annotations

import textwrap

import pytest
import redis

from devtools.fakes import CRMResponse
from devtools.processes import wait_until
from events.models import Delivery
from tests.faults.conftest import SIGNUP_CONSUMERS, Stack, assert_every_effect_done_once
from users.models import User

pytestmark = pytest.mark.faults

CONSUMER_QUEUES = [declared.queue for declared in SIGNUP_CONSUMERS]


def test_web_process_exiting_right_after_commit(stack: Stack, password: str) -> None:
    # given: a process that commits a signup and dies before its on-commit dispatch runs,
    # after a signup that rolled back
    script = textwrap.dedent(
        f"""
        import os, django
        django.setup()
        from django.db import transaction
        from users.services import user_create
        try:
            with transaction.atomic():
                user_create(email="rolledback@example.com", password={password!r})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with transaction.atomic():
            transaction.on_commit(lambda: os._exit(0))  # runs first: right after COMMIT
            user_create(email="committed@example.com", password={password!r})
        raise SystemExit("the dispatch ran: the process should have died before it")
        """
    )

    result = stack.manage(script=script)

    # then: the user is committed, its deliveries owed, nothing reached the broker
    assert result.returncode == 0, result.stdout + result.stderr
    assert User.objects.filter(email="committed@example.com").exists()
    assert not User.objects.filter(email="rolledback@example.com").exists()
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == len(CONSUMER_QUEUES)
    broker = redis.Redis.from_url(stack.redis.url())
    assert sum(broker.llen(queue) for queue in CONSUMER_QUEUES) == 0

    # when: a worker and the sweep run
    stack.worker()
    stack.beat()

    # then
    assert_every_effect_done_once(stack, ["committed@example.com"])


@pytest.mark.parametrize("victim", ["pool child", "whole worker"])
def test_worker_killed_mid_task_then_restarted(stack: Stack, password: str, victim: str) -> None:
    # given: the CRM answers slowly, so the sync is in flight when the worker dies
    stack.env["CRM_READ_TIMEOUT"] = "10"
    stack.crm.answer(CRMResponse(delay=2.0))
    worker = stack.worker(concurrency=1)
    stack.beat()
    assert stack.web.signup("ann@example.com", password)[0] == 302
    wait_until(lambda: len(stack.crm.requests) == 1, timeout=30, describe=stack.logs)

    # when: SIGKILL mid-task
    if victim == "pool child":
        [child] = worker.children()
        child.kill()
    else:
        worker.kill()
        stack.worker()

    # then: the sync is redone with the same idempotency key, everything else once
    assert_every_effect_done_once(stack, ["ann@example.com"])
    assert len(stack.crm.requests) == 2


def test_same_delivery_enqueued_twice_and_run_by_two_workers(stack: Stack, password: str) -> None:
    # given: a signup's doorbells, then each rung twice more, before any worker runs
    stack.smtp.delay = 0.5  # widen the window in which two workers could race on one e-mail
    assert stack.web.signup("ann@example.com", password)[0] == 302
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from events.api import consumers_of
        from users.signals import user_created
        for declared in consumers_of(user_created):
            declared.task.delay()
            declared.task.delay()
        """
    )
    assert stack.manage(script=script).returncode == 0
    broker = redis.Redis.from_url(stack.redis.url())
    assert [broker.llen(queue) for queue in CONSUMER_QUEUES] == [3] * len(CONSUMER_QUEUES)

    # when: two workers take them at the same time
    stack.worker()
    stack.worker()
    stack.beat()

    # then
    assert_every_effect_done_once(stack, ["ann@example.com"])


def test_poison_messages_never_loop_and_never_stop_the_worker(stack: Stack, password: str) -> None:
    worker = stack.worker()
    stack.beat()
    script = textwrap.dedent(
        """
        import uuid, django
        django.setup()
        from audit.tasks import record_user_created
        from config.celery_app import app
        name = record_user_created.task.name
        app.send_task(name, kwargs={"event_id": "not-a-uuid"})
        app.send_task(name, args=[str(uuid.uuid4())])
        app.send_task(name, kwargs={"unexpected": 1})
        with app.producer_or_acquire() as producer:
            producer.publish({"not": "a task"}, routing_key="audit.record_user_created", serializer="pickle")
        """
    )
    assert stack.manage(script=script).returncode == 0

    assert stack.web.signup("ann@example.com", password)[0] == 302

    assert_every_effect_done_once(stack, ["ann@example.com"])
    assert worker.alive()
    assert redis.Redis.from_url(stack.redis.url()).llen("audit.record_user_created") == 0
