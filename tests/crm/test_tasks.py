from __future__ import annotations

import pytest

from crm.backends.base import CRMPermanentError, CRMTransientError
from crm.models import ContactSync
from crm.tasks import sync_crm_contact
from devtools.fakes import CRMResponse, FakeCRM
from events.retry import MAX_RETRIES, RETRY_BACKOFF_MAX, retry_countdown
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_crm_500_then_200_ends_synced(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=500), CRMResponse(status=503))
    event = UserCreatedFactory()

    sync_crm_contact.apply(kwargs={"event_id": str(event.event_id)}).get()

    sync = ContactSync.objects.get()
    assert (sync.status, sync.attempts) == (ContactSync.Status.SYNCED, 3)
    assert len(crm.requests) == 3


def test_crm_400_fails_at_once_with_its_reason(crm: FakeCRM) -> None:
    crm.answer(CRMResponse(status=400, body='{"error": "invalid"}'))
    event = UserCreatedFactory()

    result = sync_crm_contact.apply(kwargs={"event_id": str(event.event_id)})

    assert result.failed()
    assert isinstance(result.result, CRMPermanentError)
    assert len(crm.requests) == 1
    assert ContactSync.objects.get().status == ContactSync.Status.FAILED


def test_crm_failing_every_time_gives_up_after_the_last_retry(crm: FakeCRM) -> None:
    crm.default = CRMResponse(status=503)
    event = UserCreatedFactory()

    result = sync_crm_contact.apply(kwargs={"event_id": str(event.event_id)})

    assert result.failed()
    assert isinstance(result.result, CRMTransientError)
    assert len(crm.requests) == MAX_RETRIES + 1
    sync = ContactSync.objects.get()
    assert (sync.status, sync.attempts) == (ContactSync.Status.FAILED, MAX_RETRIES + 1)


def test_retry_countdown_backs_off_and_honours_retry_after() -> None:
    assert all(0 <= retry_countdown(retries=retries) <= min(2**retries, RETRY_BACKOFF_MAX) for retries in range(12))
    assert retry_countdown(retries=0, retry_after=30) >= 30
    assert retry_countdown(retries=0, retry_after=86_400) == RETRY_BACKOFF_MAX
