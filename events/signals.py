"""Signals for domain events: every receiver is a durable consumer, named by its dispatch_uid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

# Every EventSignal, by the name of the event it carries (e.g. "user.created").
event_signals: dict[str, EventSignal] = {}


class EventSignal(Signal):
    """A Signal sent with event=<domain event>, whose receivers are consumers owed a delivery each.

    A receiver must be connected with a dispatch_uid ("<app>.<receiver>"): it names the consumer in
    the delivery records, the admin and `manage.py replay_events`.
    """

    def __init__(self, *, event_class: type[Any]) -> None:
        super().__init__()
        self.event_class = event_class
        self.consumers: dict[str, Callable[..., Any]] = {}
        event_signals[event_class.name] = self

    def connect(
        self,
        receiver: Callable[..., Any],
        sender: object = None,
        weak: bool = True,
        dispatch_uid: str | None = None,
    ) -> None:
        """Connect a consumer; dispatch_uid is required and names it."""
        if not dispatch_uid:
            raise ValueError(f"{receiver!r} needs a dispatch_uid: it names the consumer of {self.event_class.name}")
        super().connect(receiver, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        self.consumers[dispatch_uid] = receiver

    def disconnect(
        self, receiver: Callable[..., Any] | None = None, sender: object = None, dispatch_uid: str | None = None
    ) -> bool:
        """Disconnect a consumer."""
        if dispatch_uid is not None:
            self.consumers.pop(dispatch_uid, None)
        else:
            self.consumers = {name: known for name, known in self.consumers.items() if known != receiver}
        return super().disconnect(receiver, sender=sender, dispatch_uid=dispatch_uid)
