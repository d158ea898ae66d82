"""The audit app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from audit.services import (
    audit_entries_record_circuit_changes,
    audit_entries_record_email_confirmed,
    audit_entries_record_operator_actions,
    audit_entries_record_password_reset,
    audit_entries_record_password_set,
    audit_entries_record_privileges_changed,
    audit_entries_record_user_created,
)
from events.api import CircuitChanged, OperatorActed, circuit_changed, consumer, operator_acted
from users.events import UserCreated, UserEmailConfirmed, UserPasswordReset, UserPasswordSet, UserPrivilegesChanged
from users.signals import (
    user_created,
    user_email_confirmed,
    user_password_reset,
    user_password_set,
    user_privileges_changed,
)


@consumer(user_created, atomic=True, many=True, batch_size=100)
def record_user_created(events: list[UserCreated]) -> None:
    """Record UserCreated events in the audit log."""
    audit_entries_record_user_created(events=events)


@consumer(user_privileges_changed, atomic=True, many=True, batch_size=100)
def record_privileges_changed(events: list[UserPrivilegesChanged]) -> None:
    """Record UserPrivilegesChanged events in the audit log."""
    audit_entries_record_privileges_changed(events=events)


@consumer(operator_acted, atomic=True, many=True, batch_size=100)
def record_operator_action(events: list[OperatorActed]) -> None:
    """Record what operators did to the delivery core (pause, resume, replay) in the audit log."""
    audit_entries_record_operator_actions(events=events)


@consumer(circuit_changed, atomic=True, many=True, batch_size=100)
def record_circuit_change(events: list[CircuitChanged]) -> None:
    """Record the circuit breaker's openings and closings (no actor: the breaker did it) in the audit log."""
    audit_entries_record_circuit_changes(events=events)


@consumer(user_password_set, atomic=True, many=True, batch_size=100)
def record_password_set(events: list[UserPasswordSet]) -> None:
    """Record UserPasswordSet events in the audit log."""
    audit_entries_record_password_set(events=events)


@consumer(user_email_confirmed, atomic=True, many=True, batch_size=100)
def record_email_confirmed(events: list[UserEmailConfirmed]) -> None:
    """Record UserEmailConfirmed events in the audit log."""
    audit_entries_record_email_confirmed(events=events)


@consumer(user_password_reset, atomic=True, many=True, batch_size=100)
def record_password_reset(events: list[UserPasswordReset]) -> None:
    """Record UserPasswordReset events in the audit log."""
    audit_entries_record_password_reset(events=events)
