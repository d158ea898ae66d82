"""The broker transport sets aside what it cannot read (the fault suite runs it in a real worker)."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kombu
import pytest
import redis
from celery.beat import PersistentScheduler
from django.conf import settings
from django.core.management import call_command
from kombu import Consumer, Exchange, Producer, Queue
from kombu.asynchronous import Hub
from kombu.transport import redis as kombu_redis

from config.celery_app import app as celery_app
from devtools.redis_server import RedisServer
from events.api import consumers, get_consumer
from events.broker import (
    DEAD_LETTER_KEY,
    Transport,
    Unreadable,
    check_arguments,
    check_task,
    dead_letters,
    read_envelope,
)
from events.doorbells import DOORBELL_MAX_COUNTDOWN
from tests.broker import drain_queue

SECRET = "s3cr3t-content"
WORKFLOW = "the task carries callbacks, a chain or a chord"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(DEAD_LETTER_KEY)
    yield client
    client.delete(DEAD_LETTER_KEY)


@pytest.fixture
def envelope(consumer_names: list[str], client: redis.Redis) -> dict[str, Any]:
    """A real doorbell as the project enqueues it."""
    consumer = get_consumer(consumer_names[0])
    consumer.task.apply_async()
    return json.loads(client.rpop(consumer.queue))


def _body(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_the_project_uses_the_transport() -> None:
    with celery_app.connection_for_read() as connection:
        assert connection.transport_cls is Transport or isinstance(connection.transport, Transport)


def test_a_real_message_reads(envelope: dict[str, Any]) -> None:
    assert read_envelope(json.dumps(envelope).encode()) == envelope
    check_task(envelope)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\x00" + SECRET.encode(), "not JSON"),
        (json.dumps(SECRET).encode(), "a JSON str, not a message envelope"),
        (json.dumps([SECRET]).encode(), "a JSON list, not a message envelope"),
        (json.dumps({"body": SECRET}).encode(), "no message properties"),
        (json.dumps({"properties": {"delivery_tag": "x"}, "headers": [SECRET]}).encode(), "headers are not a mapping"),
    ],
)
def test_an_item_that_is_not_an_envelope_is_unreadable(raw: bytes, reason: str) -> None:
    with pytest.raises(Unreadable) as raised:
        read_envelope(raw)
    assert str(raised.value) == reason
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": "!!" + SECRET}, "body is not valid base64"),
        ({"body": base64.b64encode(SECRET.encode()).decode()}, "body does not decode"),
        ({"body": _body(SECRET)}, "body is not a task's arguments"),
        ({"body": _body([[], {}, SECRET])}, "body is not a task's arguments"),
        ({"content-type": "application/x-python-serialize"}, "content type not accepted"),
        ({"headers": {}}, "no task name or id"),
        ({"headers": {"task": "nobody.knows", "id": "1"}}, "unknown task"),
    ],
)
def test_a_task_message_that_does_not_unpack_is_unreadable(
    envelope: dict[str, Any], change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unreadable) as raised:
        check_task({**envelope, **change})
    assert str(raised.value) == reason


def _task_envelope(envelope: dict[str, Any], name: str, args: Any = (), kwargs: Any = None, **embed: Any) -> dict:
    """The real doorbell's envelope, made to name another task with other arguments."""
    body = [list(args), kwargs or {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None, **embed}]
    return {**envelope, "headers": {**envelope["headers"], "task": name}, "body": _body(body)}


@pytest.mark.parametrize(
    "name",
    [
        "celery.starmap",
        "celery.accumulate",
        "celery.chord_unlock",
        "celery.backend_cleanup",
        "celery.map",
        "celery.chunks",
        "celery.group",
        "celery.chain",
        "celery.chord",
    ],
)
def test_celerys_built_in_tasks_are_not_the_projects(envelope: dict[str, Any], name: str) -> None:
    assert name in celery_app.tasks

    with pytest.raises(Unreadable) as raised:
        check_task(_task_envelope(envelope, name, [SECRET]))
    assert str(raised.value) == "not one of the project's tasks"


def test_every_task_the_project_defines_is_admitted_with_the_arguments_it_takes(envelope: dict[str, Any]) -> None:
    own = [name for name in celery_app.tasks if not name.startswith("celery.")]

    for name in own:
        check_task(_task_envelope(envelope, name))
    assert "events.tasks.sweep_deliveries" in own and all(declared.task_name in own for declared in consumers())


@pytest.mark.parametrize(
    ("args", "kwargs", "embed", "reason"),
    [
        ([SECRET], {}, {}, "arguments do not fit the task"),
        ([], {"days": SECRET}, {}, "arguments do not fit the task"),
        ([], {}, {"callbacks": [{"task": "celery.accumulate", "args": [SECRET]}]}, WORKFLOW),
        ([], {}, {"chain": [{"task": "events.tasks.prune_deliveries"}]}, WORKFLOW),
        ([], {}, {"errbacks": [{"task": "celery.starmap"}]}, WORKFLOW),
    ],
)
def test_a_project_task_with_arguments_it_does_not_take_is_unreadable(
    envelope: dict[str, Any], args: list[Any], kwargs: dict[str, Any], embed: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unreadable) as raised:
        check_task(_task_envelope(envelope, "events.tasks.prune_deliveries", args, kwargs, **embed))
    assert str(raised.value) == reason
    assert SECRET not in str(raised.value)


def _typed(user_id: int, note: str | None = None, *, flags: list | None = None) -> None:
    """A task's run with JSON-typed parameters."""


@pytest.mark.parametrize(
    ("args", "kwargs", "fits"),
    [
        ([1], {}, True),
        ([1, "x"], {"flags": []}, True),
        ([1], {"note": None, "flags": None}, True),
        (["1"], {}, False),
        ([True], {}, False),
        ([1.5], {}, False),
        ([1, 2], {}, False),
        ([1], {"flags": {}}, False),
        ([], {}, False),
    ],
)
def test_arguments_must_be_of_the_json_types_the_task_takes(
    args: list[Any], kwargs: dict[str, Any], fits: bool
) -> None:
    task = SimpleNamespace(run=_typed)

    if fits:
        check_arguments(task, args, kwargs)
    else:
        with pytest.raises(Unreadable):
            check_arguments(task, args, kwargs)


def test_beat_schedules_no_built_in_task(tmp_path: Path) -> None:
    # given: beat's own scheduler, which adds celery.backend_cleanup by itself while result_expires is set
    scheduler = PersistentScheduler(app=celery_app, schedule_filename=str(tmp_path / "beat-schedule"))
    try:
        # when
        tasks = sorted(entry.task for entry in scheduler.schedule.values())
    finally:
        scheduler.close()

    # then
    assert tasks == ["events.tasks.prune_deliveries", "events.tasks.sweep_deliveries"]


def test_a_get_sets_garbage_aside_and_returns_the_next_real_message(
    consumer_names: list[str], client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = get_consumer(consumer_names[0])
    consumer.task.apply_async()
    client.rpush(consumer.queue, b"\xff" + SECRET.encode(), json.dumps(SECRET))  # read before the real one

    found = drain_queue(celery_app, consumer.queue)

    assert [task.name for task in found] == [consumer.task.name]
    letters = dead_letters(client)
    assert sorted(letter.raw for letter in letters) == sorted([b"\xff" + SECRET.encode(), json.dumps(SECRET).encode()])
    assert {letter.queue for letter in letters} == {consumer.queue}
    assert SECRET not in caplog.text
    assert caplog.text.count("Set aside an unreadable message") == 2


def test_the_command_lists_without_content_and_clears(client: redis.Redis, consumer_names: list[str]) -> None:
    queue = get_consumer(consumer_names[0]).queue
    client.lpush(queue, SECRET)
    drain_queue(celery_app, queue)

    out = StringIO()
    call_command("broker_dead_letters", stdout=out)
    assert "1 item(s) set aside" in out.getvalue() and "not JSON" in out.getvalue()
    assert SECRET not in out.getvalue()

    call_command("broker_dead_letters", "--clear", stdout=StringIO())
    assert client.llen(DEAD_LETTER_KEY) == 0


def test_a_compressed_task_message_reads(envelope: dict[str, Any]) -> None:
    from kombu.compression import compress

    body, _content_type = compress(base64.b64decode(envelope["body"]), "zlib")
    compressed = {
        **envelope,
        "body": base64.b64encode(body).decode(),
        "headers": {**envelope["headers"], "compression": "application/x-gzip"},
    }

    check_task(compressed)
    with pytest.raises(Unreadable, match="decompress"):
        check_task({**compressed, "body": base64.b64encode(b"not zlib").decode()})


# The upstream methods events.broker overrides, as read when it was written (kombu 5.7.0).
UPSTREAM_METHODS = {
    "Channel._brpop_read": "c42518699709f2df90f55a048fe6346612ae5527e5c4a6819f2c0920dc62088f",
    "Channel._get": "be26a9f1eb4cf8da2aa65f4815a1709bf80b4434b064d3d7146872d318ad506c",
    "QoS.restore_unacked": "8954efef014d546e047d213e437d5a27ad91b8288d6b90b4484addca86b3c6e2",
}


def test_the_overridden_kombu_methods_are_the_ones_the_transport_was_written_against() -> None:
    """Fail on a kombu upgrade that changes what the transport overrides: re-read them, then update the digests."""
    digests = {}
    for qualified in UPSTREAM_METHODS:
        owner, name = qualified.split(".")
        source = inspect.getsource(getattr(getattr(kombu_redis, owner), name))
        digests[qualified] = hashlib.sha256(source.encode()).hexdigest()

    assert kombu.__version__ == "5.7.0"
    assert digests == UPSTREAM_METHODS


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, to kill."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def holding(own_redis: RedisServer) -> Iterator[kombu.Connection]:
    """A connection consuming as a worker does, one message held unacknowledged on its default channel."""
    connection = kombu.Connection(own_redis.url(), transport=Transport)
    work = Queue("work", Exchange("work"), "work")
    with Producer(connection.clone()) as producer:
        producer.publish({"n": 1}, exchange=work.exchange, routing_key="work", declare=[work])
    held: list[kombu.Message] = []
    Consumer(connection.default_channel, [work], callbacks=[lambda body, message: held.append(message)]).consume()
    # Celery's remote control: an auto-delete broadcast queue on a channel of its own.
    broadcast = Queue("test.pidbox", Exchange("test.pidbox", type="fanout"), auto_delete=True)
    Consumer(connection.channel(), [broadcast], callbacks=[lambda body, message: None], no_ack=True).consume()
    hub = Hub()
    connection.transport.register_with_event_loop(connection.connection, hub)
    loop = hub.create_loop()
    while not held:
        next(loop)
    next(loop)  # the next BRPOP is sent at once and waits, as in a worker's event loop
    yield connection
    hub.close()


def test_a_worker_connection_closed_after_redis_died_warns_of_the_doorbells_not_restored(
    own_redis: RedisServer, holding: kombu.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    own_redis.kill()

    # when: Celery's clean-up after a lost connection (celery.worker.consumer.Consumer,
    # on_connection_error_after_connected): collect, ignoring every error, then close
    try:
        holding.collect(socket_timeout=2)
    except Exception:  # noqa: BLE001 - as Celery does
        pass
    holding.close()  # upstream raises AttributeError here, which stops the worker

    # then
    warnings = [record for record in caplog.records if record.name == "events.broker"]
    assert [(record.levelname, record.getMessage()) for record in warnings] == [
        ("WARNING", "Broker connection gone: 1 unacknowledged doorbell(s) not restored; the sweep rings again")
    ]


def test_a_connection_closed_with_redis_up_restores_its_unacknowledged_messages(
    own_redis: RedisServer, holding: kombu.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    holding.close()

    assert redis.Redis.from_url(own_redis.url()).llen("work") == 1
    assert "not restored" not in caplog.text


def test_restoring_through_a_live_connection_to_a_dead_redis_still_raises_a_connection_error(
    own_redis: RedisServer, holding: kombu.Connection
) -> None:
    own_redis.kill()

    # As a channel's close restores (kombu ignores a connection error there).
    with pytest.raises(redis.ConnectionError):
        holding.default_channel.qos.restore_unacked_once()


@pytest.mark.parametrize(
    ("ahead", "reason"),
    [
        (timedelta(days=30), "eta further ahead than the project ever rings"),
        (timedelta(seconds=DOORBELL_MAX_COUNTDOWN + 3600), "eta further ahead than the project ever rings"),
        ("next tuesday", "eta is not a time"),
    ],
)
def test_a_task_due_further_ahead_than_any_ring_is_unreadable(
    envelope: dict[str, Any], ahead: timedelta | str, reason: str
) -> None:
    # given: a worker would hold each such message in memory until it is due
    eta = ahead if isinstance(ahead, str) else (datetime.now(UTC) + ahead).isoformat()

    # when
    with pytest.raises(Unreadable) as raised:
        check_task({**envelope, "headers": {**envelope["headers"], "eta": eta}})

    # then
    assert str(raised.value) == reason


def test_the_projects_own_countdown_ring_is_admitted(consumer_names: list[str], client: redis.Redis) -> None:
    # given: the longest countdown a retry rings with
    consumer = get_consumer(consumer_names[0])
    consumer.task.apply_async(countdown=DOORBELL_MAX_COUNTDOWN)

    # when
    ring = json.loads(client.rpop(consumer.queue))

    # then
    assert ring["headers"]["eta"]
    check_task(ring)
