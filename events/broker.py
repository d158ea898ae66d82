"""The Redis broker transport, made to set aside what it cannot read, and to outlive a dead Redis.

Kombu's Redis transport decodes a queue item inside the worker's event loop: one item that is not
a message (raw bytes, a bare JSON string, bad base64, a body that does not unpack) raises there and
stops the worker, or makes it restore and re-read the same item forever. Anyone who can write to
Redis could stop every side effect. This transport checks each item before kombu and Celery see it;
an unreadable one is pushed, raw, onto a dead-letter list (`DEAD_LETTER_KEY`), logged by queue,
size and reason only (never its content), and the worker goes on with the next item.

Readable is not enough: a task message is admitted only when it names one of the project's own
tasks (none of Celery's built-ins, such as celery.starmap, which runs any task with any
arguments), carries no callbacks, chain or chord, and its arguments bind to the task's signature
with the JSON types it takes. Anything else is set aside the same way, and nothing of it runs.

When Redis dies while a worker holds unacknowledged messages (prefetched doorbells, countdowns),
Celery's clean-up can close the consuming channel after kombu let go of the connection, and kombu's
restore of those messages then raises AttributeError, which stops the worker (docs/upstream/
kombu-restore-unacked.md). This transport's QoS skips that restore with a warning: the rows say
what is owed and the sweep rings again.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
import logging
import sys
import sysconfig
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from kombu.compression import decompress
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import loads, prepare_accept_content
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json
from kombu.utils.encoding import bytes_to_str

from events.doorbells import DOORBELL_MAX_COUNTDOWN

logger = logging.getLogger(__name__)

DEAD_LETTER_KEY = "events:broker:dead"
# The list is capped: whoever can fill a queue with garbage must not fill Redis's memory through us.
DEAD_LETTER_LIMIT = 10_000


class Unreadable(Exception):
    """A queue item that is not a message this project can run; the text is a reason, never content."""


@dataclass(frozen=True)
class DeadLetter:
    """One item set aside: where it was, why, when, and its bytes as they were."""

    queue: str
    reason: str
    at: float
    raw: bytes

    @classmethod
    def from_json(cls, text: bytes | str) -> DeadLetter:
        """Read an entry of the dead-letter list."""
        data = json.loads(text)
        return cls(queue=data["queue"], reason=data["reason"], at=data["at"], raw=base64.b64decode(data["raw"]))

    def to_json(self) -> str:
        """The entry as stored: the raw bytes in base64, so any bytes survive."""
        return json.dumps(
            {"queue": self.queue, "reason": self.reason, "at": self.at, "raw": base64.b64encode(self.raw).decode()}
        )


def read_envelope(raw: bytes) -> dict[str, Any]:
    """Return the kombu envelope in `raw`, or raise Unreadable if kombu would choke on it."""
    try:
        envelope = kombu_json.loads(raw)  # kombu's decoder: it reads the type tags its encoder writes
    except (UnicodeDecodeError, ValueError, TypeError):
        raise Unreadable("not JSON") from None
    check_envelope(envelope)
    return envelope


def check_envelope(envelope: Any) -> None:
    """Raise Unreadable unless `envelope` has what kombu's Message reads without checking."""
    if not isinstance(envelope, dict):
        raise Unreadable(f"a JSON {type(envelope).__name__}, not a message envelope")
    properties = envelope.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise Unreadable("no message properties")
    if not isinstance(properties.get("delivery_info", {}), dict):
        raise Unreadable("bad delivery info")
    if not isinstance(envelope.get("headers") or {}, dict):
        raise Unreadable("headers are not a mapping")
    if not isinstance(envelope.get("body", ""), str):
        raise Unreadable("body is not text")


def check_task(envelope: dict[str, Any]) -> None:
    """Raise Unreadable unless `envelope` is a task message (protocol 2) this project's worker can run."""
    headers = envelope.get("headers") or {}
    name = headers.get("task")
    if not isinstance(name, str) or not isinstance(headers.get("id"), str):
        raise Unreadable("no task name or id")
    app = current_app
    if name not in app.tasks:
        raise Unreadable("unknown task")
    task = app.tasks[name]
    if not is_project_task(task):
        # Celery's built-ins (celery.starmap, celery.accumulate, celery.chord_unlock...) run any
        # task with any arguments, or echo them back: the project sends none of them.
        raise Unreadable("not one of the project's tasks")
    body = envelope.get("body", "")
    if envelope["properties"].get("body_encoding") == "base64":
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Unreadable("body is not valid base64") from None
    compression = headers.get("compression")
    if compression:
        try:
            body = decompress(body if isinstance(body, bytes) else body.encode(), compression)
        except Exception:  # noqa: BLE001 - an unknown method or a corrupt body: either way unreadable
            raise Unreadable("body does not decompress") from None
    try:
        arguments = loads(
            body,
            envelope.get("content-type"),
            envelope.get("content-encoding") or "utf-8",
            accept=prepare_accept_content(app.conf.accept_content),
        )
    except ContentDisallowed:
        raise Unreadable("content type not accepted") from None
    except (DecodeError, UnicodeDecodeError, ValueError, TypeError):
        raise Unreadable("body does not decode") from None
    if not (
        isinstance(arguments, list | tuple)
        and len(arguments) == 3
        and isinstance(arguments[0], list | tuple)
        and isinstance(arguments[1], dict)
        and isinstance(arguments[2], dict)
    ):
        raise Unreadable("body is not a task's arguments")
    check_eta(headers.get("eta"))
    args, kwargs, embed = arguments
    if any(embed.get(key) for key in WORKFLOW_KEYS):
        # The project sends each task on its own; a callback or chain would be a second task,
        # run on the word of the message.
        raise Unreadable("the task carries callbacks, a chain or a chord")
    check_arguments(task, list(args), kwargs)


# A countdown the project sends is at most DOORBELL_MAX_COUNTDOWN; a worker keeps each message
# with an ETA in memory until it is due, outside the prefetch limit, so a far one is refused.
ETA_SLACK = 60.0


def check_eta(eta: Any) -> None:
    """Raise Unreadable unless eta is absent or a time at most DOORBELL_MAX_COUNTDOWN (and slack) ahead."""
    if eta is None:
        return
    try:
        when = datetime.fromisoformat(eta)
    except (TypeError, ValueError):
        raise Unreadable("eta is not a time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if (when - datetime.now(UTC)).total_seconds() > DOORBELL_MAX_COUNTDOWN + ETA_SLACK:
        raise Unreadable("eta further ahead than the project ever rings")


# What a task message's third part may hold to make Celery run more than the task it names.
WORKFLOW_KEYS = ("callbacks", "errbacks", "chain", "chord")
# The JSON types a task's parameter may be annotated with, by the name its annotation gives.
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
    "list": (list,),
    "dict": (dict,),
}


def is_project_task(task: Any) -> bool:
    """Tell whether task is one the project defines (not Celery's or a library's)."""
    return is_project_module(getattr(task.run, "__module__", None) or type(task).__module__)


@functools.cache
def is_project_module(name: str) -> bool:
    """Tell whether the module named name is the project's own: under BASE_DIR, not an installed library."""
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None)
    if filename is None:
        return False
    path = Path(filename).resolve()
    libraries = {Path(sysconfig.get_path(kind)).resolve() for kind in ("purelib", "platlib")}
    return path.is_relative_to(Path(settings.BASE_DIR).resolve()) and not any(
        path.is_relative_to(library) for library in libraries
    )


def check_arguments(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise Unreadable unless args and kwargs bind to task's signature, each of a type it takes."""
    signature = inspect.signature(task.run)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        raise Unreadable("arguments do not fit the task") from None
    for name, value in bound.arguments.items():
        parameter = signature.parameters[name]
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        allowed = _json_types(parameter.annotation)
        if allowed is not None and (
            not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
        ):
            raise Unreadable(f"argument {name} is not of the type the task takes")


def _json_types(annotation: Any) -> tuple[type, ...] | None:
    # Annotations are strings here (from __future__ import annotations): read "int | None" by its
    # names; an annotation of any other type is left to the task.
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    names = [part.strip().split("[")[0] for part in text.split("|")]
    if not all(name in JSON_TYPES for name in names):
        return None
    return tuple(kind for name in names for kind in JSON_TYPES[name])


class QoS(kombu_redis.QoS):
    """Kombu's Redis QoS, which gives up restoring unacknowledged messages once its connection is gone."""

    def restore_unacked(self, client: Any = None) -> None:
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
            # Kombu would build a client from the closed connection and raise AttributeError, out of
            # Celery's connection-error handling, stopping the worker. Nothing can be restored
            # without a connection, and a Redis that died took its unacknowledged set with it; each
            # message was a doorbell, and the sweep rings every consumer with due rows again.
            logger.warning(
                "Broker connection gone: %d unacknowledged doorbell(s) not restored; the sweep rings again",
                len(self._delivered),
            )
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(kombu_redis.Channel):
    """Kombu's Redis channel, reading each queue item through `admit` first."""

    QoS = QoS

    def admit(self, raw: bytes, queue: str) -> dict[str, Any] | None:
        """Return the message in `raw`, or set it aside and return None."""
        try:
            envelope = read_envelope(raw)
            if queue in self._task_queues():
                check_task(envelope)
        except Unreadable as unreadable:
            self.set_aside(raw, queue=queue, reason=str(unreadable))
            return None
        return envelope

    def _task_queues(self) -> set[str]:
        # The queues whose messages are tasks (Celery's own, plus one per consumer); replies and
        # other kombu queues carry other bodies.
        return set(current_app.amqp.queues)

    def set_aside(self, raw: bytes, *, queue: str, reason: str) -> None:
        """Keep `raw` in the dead-letter list and say so, by size and reason only."""
        letter = DeadLetter(queue=queue, reason=reason, at=time.time(), raw=raw)
        with self.conn_or_acquire() as client, client.pipeline() as pipe:
            pipe.lpush(DEAD_LETTER_KEY, letter.to_json())
            pipe.ltrim(DEAD_LETTER_KEY, 0, DEAD_LETTER_LIMIT - 1)
            pipe.execute()
        logger.warning(
            "Set aside an unreadable message from queue %s (%d bytes): %s; kept raw in Redis list %s",
            queue,
            len(raw),
            reason,
            DEAD_LETTER_KEY,
        )

    # Kombu's two reads, as upstream (kombu 5.7) but for `admit` in place of a bare JSON decode.

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # Disconnect so that the next poll reconnects (as upstream).
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise kombu_redis.Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message = self.admit(item, dest)
            if message is not None:
                self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _get(self, queue: str) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            for priority in self.priority_steps:
                while item := client.rpop(self._q_for_pri(queue, priority)):
                    self._maybe_update_queues_expire(client, queue)
                    message = self.admit(item, queue)
                    if message is not None:
                        return message
            self._maybe_update_queues_expire(client, queue)
            raise kombu_redis.Empty()

    def _deliver_fanout_message(self, message: Any, exchange: str) -> bool:
        # Broadcasts (remote control: ping, shutdown) arrive decoded; a JSON value that is not an
        # envelope would fail in kombu's Message and stop the worker.
        try:
            check_envelope(message)
        except Unreadable as unreadable:
            self.set_aside(json.dumps(message).encode(), queue=f"{exchange} (broadcast)", reason=str(unreadable))
            raise kombu_redis.Empty() from None
        return super()._deliver_fanout_message(message, exchange)


class Transport(kombu_redis.Transport):
    """Kombu's Redis transport with the channel above (`CELERY_BROKER_TRANSPORT` names it)."""

    Channel = Channel


def dead_letters(client: Any, *, limit: int = 100) -> list[DeadLetter]:
    """The newest items set aside, newest first."""
    return [DeadLetter.from_json(entry) for entry in client.lrange(DEAD_LETTER_KEY, 0, limit - 1)]
