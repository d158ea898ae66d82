from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import Celery
from celery.exceptions import ImproperlyConfigured
from django.conf import settings
from kombu import Queue

from config.celery_app import app
from events.api import consumers
from events.doorbells import broker_redis
from events.worker import HEARTBEAT_KEY, PRESENCE_KEY, ConsumerSelection, Heartbeat, consuming, heartbeat
from events.worker import consumed as queues_consumed

OTHER_QUEUES = ["default", "events.sweep"]
ATOMIC = sorted(declared.queue for declared in consumers() if declared.atomic)
EXTERNAL = sorted(declared.queue for declared in consumers() if not declared.atomic)


def worker(selected: list[str] | None = None) -> SimpleNamespace:
    """A worker's parent as the bootstep sees it: an app with the project's queues, -Q applied."""
    celery = Celery("selection-test", set_as_current=False)
    for name in [*OTHER_QUEUES, *ATOMIC, *EXTERNAL]:
        celery.amqp.queues.select_add(Queue(name, routing_key=name))
    if selected:
        celery.amqp.queues.select(selected)
    return SimpleNamespace(app=celery)


def consumed(parent: SimpleNamespace) -> list[str]:
    return sorted(parent.app.amqp.queues.consume_from)


def test_both_kinds_of_consumer_exist() -> None:
    assert ATOMIC and EXTERNAL


def test_an_atomic_worker_consumes_every_queue_but_the_external_consumers() -> None:
    parent = worker()

    everything = consumed(parent)

    ConsumerSelection(parent, consumers="atomic")

    assert consumed(parent) == sorted(set(everything) - set(EXTERNAL))
    assert set(OTHER_QUEUES) | set(ATOMIC) <= set(consumed(parent))


def test_an_external_worker_consumes_only_the_external_consumers() -> None:
    parent = worker()

    ConsumerSelection(parent, consumers="external")

    assert consumed(parent) == EXTERNAL


def test_without_the_option_a_worker_consumes_every_queue_and_q_still_narrows() -> None:
    parent = worker()
    everything = consumed(parent)
    ConsumerSelection(parent)
    assert consumed(parent) == everything
    assert set(OTHER_QUEUES) | set(ATOMIC) | set(EXTERNAL) <= set(everything)

    parent = worker([EXTERNAL[0], ATOMIC[0]])
    ConsumerSelection(parent, consumers="external")
    assert consumed(parent) == [EXTERNAL[0]]


def test_a_selection_that_leaves_no_queue_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="--consumers atomic leaves this worker no queue"):
        ConsumerSelection(worker(EXTERNAL), consumers="atomic")


def test_the_worker_command_has_the_option() -> None:
    assert [option.name for option in app.user_options["worker"]] == ["consumers"]
    assert ConsumerSelection in app.steps["worker"]


def test_the_procfiles_workers_together_consume_every_queue_each_kind_apart() -> None:
    procfile = (Path(settings.BASE_DIR) / "Procfile").read_text()
    kinds = [
        re.search(r"--consumers (\w+)", line)[1] if "--consumers" in line else "all"
        for line in procfile.splitlines()
        if "celery -A config worker" in line and not line.startswith("#")
    ]
    selections = []
    for kind in kinds:
        parent = worker()
        everything = set(consumed(parent))
        ConsumerSelection(parent, consumers=kind)
        selections.append(set(consumed(parent)))

    assert sorted(kinds) == ["atomic", "external"]
    assert set().union(*selections) == everything
    assert not selections[0] & selections[1]


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue no real worker beats for, its heartbeat keys cleared."""
    name = "tests.heartbeat"
    client = broker_redis()
    client.delete(HEARTBEAT_KEY.format(name), *client.keys(PRESENCE_KEY.format(name, "*")))
    yield name
    client.delete(HEARTBEAT_KEY.format(name), *client.keys(PRESENCE_KEY.format(name, "*")))


def test_a_queue_stays_consumed_while_one_of_its_workers_still_beats(queue: str) -> None:
    # given: two workers consuming the queue
    heartbeat(queues=[queue], worker="a@test")
    heartbeat(queues=[queue], worker="b@test")

    # when: one stops consuming it, then the other
    heartbeat(queues=[], worker="a@test", stopped=[queue])
    after_one = queues_consumed([queue])
    heartbeat(queues=[], worker="b@test", stopped=[queue])

    # then
    assert after_one == {queue}
    assert queues_consumed([queue]) == set()


def test_a_worker_of_the_release_before_beating_beside_this_one_breaks_neither(queue: str) -> None:
    # given: mid-deploy, an old worker's plain key per queue (events:consuming:<queue>, 15 s)
    old_key = f"events:consuming:{queue}"
    broker_redis().set(old_key, 1, ex=15)

    try:
        # when
        heartbeat(queues=[queue], worker="new@test")
        seen = queues_consumed([queue])
        broker_redis().set(old_key, 1, ex=15)

        # then
        assert seen == {queue}
        assert queues_consumed([queue]) == {queue}
    finally:
        broker_redis().delete(old_key)


def test_a_worker_whose_word_expired_no_longer_counts(queue: str) -> None:
    # given: a worker that beat once, then died without a word (its presence expired)
    heartbeat(queues=[queue], worker="gone@test")
    broker_redis().delete(PRESENCE_KEY.format(queue, "gone@test"))

    # then
    assert queues_consumed([queue]) == set()
    assert broker_redis().smembers(HEARTBEAT_KEY.format(queue)) == set()


def test_the_heartbeat_claims_only_the_queues_the_consumer_consumes_at_that_moment(queue: str) -> None:
    # given: a consumer of two queues, one of them cancelled (kombu keeps no consumer tag for it)
    other = f"{queue}.other"
    task_consumer = SimpleNamespace(queues=[Queue(queue), Queue(other)], consuming_from=lambda q: q.name == queue)
    parent = SimpleNamespace(task_consumer=task_consumer, hostname="w@test")
    step = Heartbeat(SimpleNamespace())
    step._write(parent, queues={queue, other})

    # when
    step._beat(parent)

    # then
    assert consuming(parent) == {queue}
    assert queues_consumed([queue, other]) == {queue}


def test_workers_take_no_remote_control() -> None:
    # Whoever reaches Redis could otherwise stop them, cancel their queues or read their settings
    # (tests/faults/test_broker_access_faults.py sends them the commands).
    assert app.conf.worker_enable_remote_control is False
