"""The side effect of the audit app: one entry per event."""

from __future__ import annotations

from audit.models import AuditEntry
from events.api import CircuitChanged, OperatorActed
from users.events import UserCreated, UserEmailConfirmed, UserPasswordReset, UserPasswordSet, UserPrivilegesChanged

# The source of what the circuit breaker did: never an operator's (admin, command).
CIRCUIT_SOURCE = "breaker"


def audit_entries_record_user_created(*, events: list[UserCreated]) -> None:
    """Record the creation of each user in the audit log in one insert; entries already there stay as they are."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action.USER_CREATED,
                actor_id=event.actor_id,
                target_user_id=event.user_id,
                source=event.source.value,
                occurred_at=event.occurred_at,
            )
            for event in events
        ]
    )


def audit_entries_record_privileges_changed(*, events: list[UserPrivilegesChanged]) -> None:
    """Record each change of a user's privileges, with its actor and what changed, in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action.PRIVILEGES_CHANGED,
                actor_id=event.actor_id,
                target_user_id=event.user_id,
                source=event.source,
                occurred_at=event.occurred_at,
                details=event.changes,
            )
            for event in events
        ]
    )


def audit_entries_record_operator_actions(*, events: list[OperatorActed]) -> None:
    """Record who paused, resumed or replayed what, in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action(event.action),
                actor_id=event.actor_id,
                target_user_id=None,
                source=event.source,
                occurred_at=event.occurred_at,
                details={"consumers": list(event.consumers), "count": event.count, **event.details},
            )
            for event in events
        ]
    )


def audit_entries_record_circuit_changes(*, events: list[CircuitChanged]) -> None:
    """Record each opening and closing of a consumer's circuit by its breaker (no actor), in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action(event.action),
                actor_id=None,
                target_user_id=None,
                source=CIRCUIT_SOURCE,
                occurred_at=event.occurred_at,
                details={"consumers": [event.consumer], "failures": event.failures, "error_class": event.error_class},
            )
            for event in events
        ]
    )


def audit_entries_record_password_set(*, events: list[UserPasswordSet]) -> None:
    """Record each password set by someone other than its user, with its actor (never the password), in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action.PASSWORD_SET,
                actor_id=event.actor_id,
                target_user_id=event.user_id,
                source=event.source,
                occurred_at=event.occurred_at,
                details={"usable": event.usable},
            )
            for event in events
        ]
    )


def audit_entries_record_email_confirmed(*, events: list[UserEmailConfirmed]) -> None:
    """Record each confirmation of a user's e-mail address, and how it was proved, in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action.EMAIL_CONFIRMED,
                # The owner of the mailbox, acting on their own account.
                actor_id=event.user_id,
                target_user_id=event.user_id,
                source=event.method.value,
                occurred_at=event.occurred_at,
            )
            for event in events
        ]
    )


def audit_entries_record_password_reset(*, events: list[UserPasswordReset]) -> None:
    """Record each password a user set through a reset link, in one insert."""
    _insert(
        [
            AuditEntry(
                event_id=event.event_id,
                action=AuditEntry.Action.PASSWORD_RESET,
                actor_id=event.user_id,
                target_user_id=event.user_id,
                source="reset_link",
                occurred_at=event.occurred_at,
            )
            for event in events
        ]
    )


def _insert(entries: list[AuditEntry]) -> None:
    """Insert entries in one statement; those already there stay as they are."""
    # The unique (event_id, action): a redelivered event adds nothing.
    AuditEntry.objects.bulk_create(entries, ignore_conflicts=True)
