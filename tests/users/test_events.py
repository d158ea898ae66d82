from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from users.events import (
    EmailConfirmationMethod,
    UserCreated,
    UserCreationSource,
    UserEmailConfirmationRequested,
    UserEmailConfirmed,
    UserPasswordReset,
    UserPasswordResetRequested,
)


def test_user_created_round_trips_through_json() -> None:
    # given
    event = UserCreated(user_id=42, source=UserCreationSource.ADMIN, actor_id=7)

    # when
    restored = UserCreated.from_dict(json.loads(json.dumps(event.to_dict())))

    # then
    assert restored == event
    assert event.to_dict() == {
        "event_id": str(event.event_id),
        "occurred_at": event.occurred_at.isoformat(),
        "user_id": 42,
        "source": "admin",
        "actor_id": 7,
        "version": 1,
    }


def test_user_created_has_an_id_and_an_aware_utc_time_by_default() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SERVICE)

    assert isinstance(event.event_id, UUID)
    assert event.occurred_at.tzinfo is UTC
    assert event.actor_id is None
    assert event.version == 1


def test_user_created_normalises_an_aware_time_to_utc() -> None:
    paris = timezone(timedelta(hours=1))

    event = UserCreated(user_id=1, source="cli", occurred_at=datetime(2026, 1, 1, 13, 0, tzinfo=paris))

    assert event.occurred_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert event.source is UserCreationSource.CLI


def test_user_created_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        UserCreated(user_id=1, source=UserCreationSource.CLI, occurred_at=datetime(2026, 1, 1))


def test_user_created_refuses_an_unknown_source() -> None:
    with pytest.raises(ValueError):
        UserCreated(user_id=1, source="carrier-pigeon")


def test_user_created_is_frozen() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SERVICE)

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.user_id = 2  # type: ignore[misc]


def test_user_privileges_changed_round_trips_through_json() -> None:
    from users.events import UserPrivilegesChanged

    event = UserPrivilegesChanged(user_id=3, actor_id=1, changes={"is_staff": [False, True]})

    assert UserPrivilegesChanged.from_dict(json.loads(json.dumps(event.to_dict()))) == event


@pytest.mark.parametrize(
    "event",
    [
        UserEmailConfirmed(user_id=42, method=EmailConfirmationMethod.PASSWORD_RESET),
        UserPasswordResetRequested(user_id=42),
        UserEmailConfirmationRequested(user_id=42),
        UserPasswordReset(user_id=42),
    ],
    ids=lambda event: event.name,
)
def test_account_events_round_trip_through_json_and_carry_no_token(event: object) -> None:
    restored = type(event).from_dict(json.loads(json.dumps(event.to_dict())))

    assert restored == event
    assert set(event.to_dict()) <= {"event_id", "occurred_at", "user_id", "method", "version"}


def test_a_user_privileges_changed_stored_before_its_source_was_is_the_admin_s() -> None:
    from users.events import UserPrivilegesChanged

    stored = UserPrivilegesChanged(user_id=3, actor_id=1, changes={}, source="service").to_dict()
    del stored["source"]

    assert UserPrivilegesChanged.from_dict(stored).source == "admin"


def test_user_password_set_round_trips_through_json_and_holds_no_password() -> None:
    from users.events import UserPasswordSet

    event = UserPasswordSet(user_id=3, actor_id=None, source="cli", usable=False)

    assert UserPasswordSet.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    assert set(event.to_dict()) == {"event_id", "occurred_at", "user_id", "actor_id", "source", "usable", "version"}
