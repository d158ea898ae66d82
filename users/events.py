"""Domain events of the users app: facts, in the past tense."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self
from uuid import UUID, uuid4


class UserCreationSource(StrEnum):
    """Where a user was created from."""

    SIGNUP_FORM = "signup_form"
    ADMIN = "admin"
    CLI = "cli"
    SERVICE = "service"


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _normalise(event: Any) -> None:
    """Check and normalise the fields every event has: an aware time in UTC, a UUID id (frozen: once)."""
    if event.occurred_at.tzinfo is None or event.occurred_at.utcoffset() is None:
        raise ValueError(f"{type(event).__name__}.occurred_at must be timezone-aware")
    object.__setattr__(event, "occurred_at", event.occurred_at.astimezone(UTC))
    object.__setattr__(event, "event_id", UUID(str(event.event_id)))


@dataclass(frozen=True, kw_only=True, slots=True)
class UserCreated:
    """A user was created and the creating transaction committed."""

    name: ClassVar[str] = "user.created"

    user_id: int
    source: UserCreationSource
    actor_id: int | None = None
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=_now_utc)
    version: int = 1

    def __post_init__(self) -> None:
        _normalise(self)
        object.__setattr__(self, "source", UserCreationSource(self.source))

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": self.user_id,
            "source": self.source.value,
            "actor_id": self.actor_id,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserCreated:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            user_id=int(data["user_id"]),
            source=UserCreationSource(data["source"]),
            actor_id=None if data.get("actor_id") is None else int(data["actor_id"]),
            version=int(data["version"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPrivilegesChanged:
    """A staff member changed a user's staff or superuser status, groups or permissions, and it committed."""

    name: ClassVar[str] = "user.privileges_changed"

    user_id: int
    actor_id: int | None
    # Each changed privilege: {"is_staff": [False, True], "groups": [["support"], ["support", "ops"]], ...}
    changes: dict[str, list[Any]]
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=_now_utc)
    version: int = 1
    # Where the change was made: "admin", or "service" for code (a shell, a command) changing a group.
    source: str = "admin"

    def __post_init__(self) -> None:
        _normalise(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": self.user_id,
            "actor_id": self.actor_id,
            "changes": self.changes,
            "version": self.version,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserPrivilegesChanged:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            user_id=int(data["user_id"]),
            actor_id=None if data.get("actor_id") is None else int(data["actor_id"]),
            changes=dict(data["changes"]),
            version=int(data["version"]),
            # Events stored before the field existed were all the admin's.
            source=str(data.get("source", "admin")),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPasswordSet:
    """Someone other than the user set or removed the user's password, and it committed."""

    name: ClassVar[str] = "user.password_set"

    user_id: int
    # None when not known (the changepassword command: whoever runs it on the server).
    actor_id: int | None
    source: str
    # False when password login was disabled rather than a password set; never the password nor its hash.
    usable: bool = True
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=_now_utc)
    version: int = 1

    def __post_init__(self) -> None:
        _normalise(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": self.user_id,
            "actor_id": self.actor_id,
            "source": self.source,
            "usable": self.usable,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserPasswordSet:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            user_id=int(data["user_id"]),
            actor_id=None if data.get("actor_id") is None else int(data["actor_id"]),
            source=str(data["source"]),
            usable=bool(data["usable"]),
            version=int(data["version"]),
        )


class EmailConfirmationMethod(StrEnum):
    """How the owner of a mailbox proved it."""

    LINK = "link"
    PASSWORD_RESET = "password_reset"


@dataclass(frozen=True, kw_only=True, slots=True)
class UserEmailConfirmed:
    """The owner of a user's e-mail address proved it (a confirmation link, a password reset), and it committed."""

    name: ClassVar[str] = "user.email_confirmed"

    user_id: int
    method: EmailConfirmationMethod
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=_now_utc)
    version: int = 1

    def __post_init__(self) -> None:
        _normalise(self)
        object.__setattr__(self, "method", EmailConfirmationMethod(self.method))

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": self.user_id,
            "method": self.method.value,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserEmailConfirmed:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            user_id=int(data["user_id"]),
            method=EmailConfirmationMethod(data["method"]),
            version=int(data["version"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class _UserFact:
    """A fact about one user that carries nothing but the user's id (the base of the facts below)."""

    user_id: int
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=_now_utc)
    version: int = 1

    def __post_init__(self) -> None:
        _normalise(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "user_id": self.user_id,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            user_id=int(data["user_id"]),
            version=int(data["version"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPasswordResetRequested(_UserFact):
    """Someone asked for a password reset link for an active user's address, and it committed.

    The link itself is made when the e-mail is sent: no token is ever stored or queued.
    """

    name: ClassVar[str] = "user.password_reset_requested"


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPasswordReset(_UserFact):
    """A user set a new password through a password reset link, and it committed."""

    name: ClassVar[str] = "user.password_reset"


@dataclass(frozen=True, kw_only=True, slots=True)
class UserEmailConfirmationRequested(_UserFact):
    """A signed-in user with an unconfirmed address asked for a new confirmation link, and it committed."""

    name: ClassVar[str] = "user.email_confirmation_requested"
