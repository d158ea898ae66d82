from __future__ import annotations

from typing import Any

import pytest

from events.signals import EventSignal, event_signals
from users.events import UserCreated
from users.signals import user_created


def test_event_signal_requires_a_dispatch_uid_naming_the_consumer() -> None:
    def receiver(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match="dispatch_uid"):
        user_created.connect(receiver)


def test_event_signal_knows_its_consumers_by_dispatch_uid() -> None:
    assert event_signals["user.created"] is user_created
    assert set(user_created.consumers) == {
        "notifications.send_welcome_email",
        "notifications.notify_admins",
        "audit.record_user_created",
        "analytics.track_signup",
        "crm.sync_contact",
    }


def test_disconnecting_a_consumer_forgets_it() -> None:
    signal = EventSignal(event_class=type("Pinged", (), {"name": "tests.pinged"}))

    def receiver(sender: Any, **kwargs: Any) -> None: ...

    signal.connect(receiver, dispatch_uid="tests.receiver")
    assert signal.consumers == {"tests.receiver": receiver}

    signal.disconnect(dispatch_uid="tests.receiver")
    assert signal.consumers == {}
    assert not signal.has_listeners()
    event_signals.pop("tests.pinged")


def test_user_created_carries_user_created_events() -> None:
    assert user_created.event_class is UserCreated
