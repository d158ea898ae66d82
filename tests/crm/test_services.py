from __future__ import annotations

import pytest

from crm.backends import locmem
from crm.backends.base import CRMPermanentError, CRMTransientError
from crm.models import ContactSync
from crm.services import crm_contact_sync
from devtools.fakes import CRMResponse, FakeCRM
from tests.factories import UserCreatedFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_contact_is_synced_once_per_event() -> None:
    user = UserFactory(email="ann@example.com", name="Ann")
    event = UserCreatedFactory(user_id=user.pk)

    first = crm_contact_sync(event=event)
    second = crm_contact_sync(event=event)

    assert first is not None and second is not None
    assert second.status == ContactSync.Status.SYNCED
    assert second.attempts == 1
    assert second.synced_at is not None
    [sent] = locmem.outbox
    assert (sent.contact.user_id, sent.contact.email, sent.contact.name, sent.contact.signed_up_at) == (
        user.pk,
        "ann@example.com",
        "Ann",
        user.date_joined,
    )
    assert sent.idempotency_key == str(event.event_id)


def test_transient_failure_stays_pending_with_the_error(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=503, body="maintenance"))
    event = UserCreatedFactory()

    with pytest.raises(CRMTransientError):
        crm_contact_sync(event=event)

    sync = ContactSync.objects.get()
    assert (sync.status, sync.attempts, sync.response_status) == (ContactSync.Status.PENDING, 1, 503)
    assert "HTTP 503" in sync.last_error and "maintenance" in sync.last_error


def test_retry_after_a_transient_failure_uses_the_same_idempotency_key(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=500))
    event = UserCreatedFactory()

    with pytest.raises(CRMTransientError):
        crm_contact_sync(event=event)
    sync = crm_contact_sync(event=event)

    assert sync is not None
    assert (sync.status, sync.attempts, sync.last_error) == (ContactSync.Status.SYNCED, 2, "")
    assert {request.headers["idempotency-key"] for request in crm.requests} == {str(event.event_id)}


def test_conflict_means_already_synced(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=409))

    sync = crm_contact_sync(event=UserCreatedFactory())

    assert sync is not None
    assert (sync.status, sync.response_status) == (ContactSync.Status.SYNCED, 409)


def test_permanent_failure_is_recorded_with_the_response(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=400, body='{"error": "name too long"}'))

    with pytest.raises(CRMPermanentError):
        crm_contact_sync(event=UserCreatedFactory())

    sync = ContactSync.objects.get()
    assert (sync.status, sync.response_status) == (ContactSync.Status.FAILED, 400)
    assert "name too long" in sync.last_error


def test_sync_of_a_deleted_user_is_skipped() -> None:
    user = UserFactory()
    event = UserCreatedFactory(user_id=user.pk)
    user.delete()

    assert crm_contact_sync(event=event) is None
    assert locmem.outbox == []
