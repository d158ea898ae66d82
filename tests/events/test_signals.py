from __future__ import annotations

from typing import Any

import pytest

from events.signals import EventSignal, event_signals
from users.events import UserCreated
from users.signals import user_created


def test_event_signal_requires_a_dispatch_uid() -> None:
    def receiver(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match="dispatch_uid"):
        user_created.connect(receiver)


def test_event_signal_remembers_receivers_by_dispatch_uid_and_forgets_them() -> None:
    signal = EventSignal(event_class=type("Pinged", (), {"name": "tests.pinged"}))

    def receiver(sender: Any, **kwargs: Any) -> None: ...

    signal.connect(receiver, dispatch_uid="tests.receiver")
    assert signal.connected == {"tests.receiver": receiver}

    signal.disconnect(dispatch_uid="tests.receiver")
    assert signal.connected == {}
    assert not signal.has_listeners()
    event_signals.pop("tests.pinged")


def test_user_created_carries_user_created_events() -> None:
    assert event_signals["user.created"] is user_created
    assert user_created.event_class is UserCreated
