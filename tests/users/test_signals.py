from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from events.api import consumers
from users.events import UserCreated
from users.models import User
from users.services import user_create
from users.signals import user_created


@pytest.fixture
def failing_receiver() -> Iterator[None]:
    """A receiver that always raises, connected before the others run."""

    def explode(sender: Any, *, event: UserCreated, **kwargs: Any) -> None:
        raise RuntimeError("receiver exploded")

    user_created.connect(explode, dispatch_uid="tests.explode")
    yield
    user_created.disconnect(dispatch_uid="tests.explode")


@pytest.mark.django_db(transaction=True)
def test_one_failing_receiver_neither_stops_the_others_nor_fails_the_signup(
    failing_receiver: None, captured_events: list[UserCreated], password: str, caplog: pytest.LogCaptureFixture
) -> None:
    # when
    with caplog.at_level(logging.ERROR, logger="events.publishing"):
        user = user_create(email="ann@example.com", password=password)

    # then
    assert User.objects.filter(pk=user.pk).exists()
    assert [event.user_id for event in captured_events] == [user.pk]
    assert any("explode" in record.getMessage() and record.exc_info for record in caplog.records), caplog.text
    assert "ann@example.com" not in caplog.text


def test_user_created_has_every_declared_consumer_connected() -> None:
    declared = [c.name for c in consumers() if c.signal is user_created]

    assert declared
    assert set(declared) <= set(user_created.connected)
