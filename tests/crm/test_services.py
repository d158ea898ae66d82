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
    assert first.event_id == second.event_id
    assert ContactSync.objects.count() == 1
    assert (second.response_status, second.user_id) == (200, user.pk)
    assert second.synced_at is not None
    [sent] = locmem.outbox
    assert (sent.contact.user_id, sent.contact.email, sent.contact.name, sent.contact.signed_up_at) == (
        user.pk,
        "ann@example.com",
        "Ann",
        user.date_joined,
    )
    assert sent.idempotency_key == str(event.event_id)


def test_a_failed_sync_records_no_fact(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=503, body="maintenance"))

    with pytest.raises(CRMTransientError) as raised:
        crm_contact_sync(event=UserCreatedFactory())

    assert not ContactSync.objects.exists()  # the delivery keeps the attempt and the error
    assert (raised.value.status, raised.value.body) == (503, "maintenance")
    assert "maintenance" not in str(raised.value)


def test_retry_after_a_transient_failure_uses_the_same_idempotency_key(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=500))
    event = UserCreatedFactory()

    with pytest.raises(CRMTransientError):
        crm_contact_sync(event=event)
    sync = crm_contact_sync(event=event)

    assert sync is not None
    assert sync.response_status == 200
    assert {request.headers["idempotency-key"] for request in crm.requests} == {str(event.event_id)}


def test_conflict_means_already_synced(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=409))

    sync = crm_contact_sync(event=UserCreatedFactory())

    assert sync is not None
    assert sync.response_status == 409


@pytest.mark.parametrize(
    "status, error", [(400, CRMPermanentError), (408, CRMTransientError), (429, CRMTransientError)]
)
def test_only_408_and_429_of_the_4xx_are_worth_retrying(crm: FakeCRM, status: int, error: type[Exception]) -> None:
    crm.answer(CRMResponse(status=status, body='{"error": "name too long"}'))

    with pytest.raises(error) as raised:
        crm_contact_sync(event=UserCreatedFactory())

    assert raised.value.status == status
    assert not ContactSync.objects.exists()


def test_sync_of_a_deleted_user_is_skipped() -> None:
    user = UserFactory()
    event = UserCreatedFactory(user_id=user.pk)
    user.delete()

    assert crm_contact_sync(event=event) is None
    assert locmem.outbox == []
