"""Signals for domain events: sent with event=<domain event> once the producing transaction commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

# Every EventSignal, by the name of the event it carries (e.g. "user.created").
event_signals: dict[str, EventSignal] = {}


class EventSignal(Signal):
    """A Signal that carries one kind of domain event, and remembers its receivers by dispatch_uid.

    A consumer's receiver is connected through the consumer's declaration (`Consumer.connect`), which
    names it; `manage.py check` compares the names connected here with the consumers declared.
    """

    def __init__(self, *, event_class: type[Any]) -> None:
        super().__init__()
        self.event_class = event_class
        self.connected: dict[str, Callable[..., Any]] = {}
        event_signals[event_class.name] = self

    def connect(
        self,
        receiver: Callable[..., Any],
        sender: object = None,
        weak: bool = True,
        dispatch_uid: str | None = None,
    ) -> None:
        """Connect a receiver; dispatch_uid is required: it names the receiver in logs and checks."""
        if not dispatch_uid:
            raise ValueError(f"{receiver!r} needs a dispatch_uid to receive {self.event_class.name}")
        super().connect(receiver, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
        self.connected[dispatch_uid] = receiver

    def disconnect(
        self, receiver: Callable[..., Any] | None = None, sender: object = None, dispatch_uid: str | None = None
    ) -> bool:
        """Disconnect a receiver."""
        if dispatch_uid is not None:
            self.connected.pop(dispatch_uid, None)
        else:
            self.connected = {name: known for name, known in self.connected.items() if known != receiver}
        return super().disconnect(receiver, sender=sender, dispatch_uid=dispatch_uid)
