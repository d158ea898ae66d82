from __future__ import annotations

import pytest

from audit.models import AppendOnlyError, AuditEntry
from audit.services import (
    audit_entries_record_circuit_changes,
    audit_entries_record_email_confirmed,
    audit_entries_record_password_reset,
    audit_entries_record_user_created,
)
from events.api import CircuitChanged
from tests.factories import UserCreatedFactory, UserFactory
from users.events import EmailConfirmationMethod, UserCreationSource, UserEmailConfirmed, UserPasswordReset

pytestmark = pytest.mark.django_db


def test_audit_entry_names_action_actor_target_source_event_and_time() -> None:
    staff = UserFactory(is_staff=True)
    event = UserCreatedFactory(source=UserCreationSource.ADMIN, actor_id=staff.pk)

    audit_entries_record_user_created(events=[event])

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.target_user_id, entry.source, entry.event_id, entry.occurred_at) == (
        "user.created",
        staff.pk,
        event.user_id,
        "admin",
        event.event_id,
        event.occurred_at,
    )


def test_redelivered_event_records_one_audit_entry() -> None:
    event = UserCreatedFactory()

    audit_entries_record_user_created(events=[event])
    first = AuditEntry.objects.get()
    audit_entries_record_user_created(events=[event, UserCreatedFactory()])

    assert AuditEntry.objects.filter(event_id=event.event_id).get() == first
    assert AuditEntry.objects.count() == 2


def test_audit_entries_are_append_only() -> None:
    audit_entries_record_user_created(events=[UserCreatedFactory()])
    entry = AuditEntry.objects.get()

    entry.source = "tampered"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(source="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get().source == "signup_form"


def test_audit_entry_outlives_the_user_it_names() -> None:
    user = UserFactory()
    user_id = user.pk
    audit_entries_record_user_created(events=[UserCreatedFactory(user_id=user_id)])

    user.delete()

    assert AuditEntry.objects.get().target_user_id == user_id


def test_a_confirmed_address_and_a_password_reset_are_recorded_once_per_event() -> None:
    # given
    user = UserFactory()
    confirmed = UserEmailConfirmed(user_id=user.pk, method=EmailConfirmationMethod.PASSWORD_RESET)
    reset = UserPasswordReset(user_id=user.pk)

    # when: each delivered twice
    for _ in range(2):
        audit_entries_record_email_confirmed(events=[confirmed])
        audit_entries_record_password_reset(events=[reset])

    # then
    entries = {entry.event_id: entry for entry in AuditEntry.objects.all()}
    assert len(entries) == 2
    assert (
        entries[confirmed.event_id].action,
        entries[confirmed.event_id].target_user_id,
        entries[confirmed.event_id].actor_id,
        entries[confirmed.event_id].source,
        entries[confirmed.event_id].occurred_at,
    ) == ("user.email_confirmed", user.pk, user.pk, "password_reset", confirmed.occurred_at)
    assert (entries[reset.event_id].action, entries[reset.event_id].target_user_id, entries[reset.event_id].source) == (
        "user.password_reset",
        user.pk,
        "reset_link",
    )


def test_a_password_set_by_another_is_recorded_once_with_its_actor() -> None:
    from audit.services import audit_entries_record_password_set
    from users.events import UserPasswordSet

    event = UserPasswordSet(user_id=7, actor_id=3, source="admin", usable=True)

    audit_entries_record_password_set(events=[event])
    audit_entries_record_password_set(events=[event])

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.target_user_id, entry.source, entry.event_id, entry.details) == (
        "user.password_set",
        3,
        7,
        "admin",
        event.event_id,
        {"usable": True},
    )


def test_the_breakers_openings_and_closings_are_recorded_as_its_own_never_as_an_operators() -> None:
    opened = CircuitChanged(
        action=CircuitChanged.OPENED, consumer="crm.sync_contact", failures=5, error_class="CRMTransientError"
    )
    closed = CircuitChanged(action=CircuitChanged.CLOSED, consumer="crm.sync_contact", failures=7)

    audit_entries_record_circuit_changes(events=[opened, closed, opened])

    entries = {entry.event_id: entry for entry in AuditEntry.objects.all()}
    assert len(entries) == 2
    for event in (opened, closed):
        entry = entries[event.event_id]
        assert (entry.action, entry.actor_id, entry.target_user_id, entry.source) == (
            event.action,
            None,
            None,
            "breaker",
        )
        assert entry.details == {
            "consumers": ["crm.sync_contact"],
            "failures": event.failures,
            "error_class": event.error_class,
        }
    assert {entry.get_action_display() for entry in entries.values()} == {
        "Circuit opened by the breaker",
        "Circuit closed by the breaker",
    }
    assert not {entry.action for entry in entries.values()} & {"consumer.paused", "consumer.resumed"}
