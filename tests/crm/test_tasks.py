from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from crm.backends import locmem
from crm.models import ContactSync
from crm.tasks import sync_contact
from devtools.fakes import trickling_crm
from events.models import Delivery, DeliveryAttempt
from events.testing import run_due
from tests.factories import UserCreatedFactory
from users.models import User

pytestmark = pytest.mark.django_db


def test_sync_contact_syncs_each_owed_contact_once() -> None:
    events = [UserCreatedFactory(), UserCreatedFactory()]

    sync_contact.task.apply().get()
    run_due(sync_contact.name)

    assert sorted(sent.idempotency_key for sent in locmem.outbox) == sorted(str(e.event_id) for e in events)
    assert ContactSync.objects.count() == 2
    assert set(Delivery.objects.filter(consumer=sync_contact.name).values_list("status", flat=True)) == {"done"}


def test_a_batch_of_syncs_shares_one_kept_alive_connection(crm) -> None:
    for _ in range(3):
        UserCreatedFactory()

    run_due(sync_contact.name)

    assert len(crm.requests) == 3
    assert len({request.client_port for request in crm.requests}) == 1


def test_a_crm_trickling_its_headers_fails_the_delivery_for_a_retry_at_the_deadline(settings) -> None:
    # given: a CRM sending its status line and headers a byte every 0.2 s, never ending them
    settings.CRM_BACKEND = "crm.backends.http.CRMBackend"
    settings.CRM_READ_TIMEOUT = 0.5
    settings.CRM_TOTAL_TIMEOUT = 1.5
    UserCreatedFactory()
    with trickling_crm(trickled=b"HTTP/1.1 200 OK\r\nX-Trickle: ") as url:
        settings.CRM_API_URL = url

        # when
        run_due(sync_contact.name)

    # then: retried later, with the deadline as the reason
    row = Delivery.objects.get(consumer=sync_contact.name)
    assert row.status == Delivery.Status.PENDING
    assert "total deadline of 1.5 s" in row.last_error
    assert list(row.attempt_history.values_list("outcome", flat=True)) == [DeliveryAttempt.Outcome.RETRY]


def test_a_crm_name_resolving_to_loopback_fails_the_delivery_for_good_under_the_guard(crm, settings) -> None:
    # given: the production guard on, the CRM's name resolving to this machine
    settings.CRM_REFUSE_LOCAL_ADDRESSES = True
    settings.CRM_API_URL = f"http://localhost:{urlsplit(crm.url).port}"
    event = UserCreatedFactory()

    # when
    run_due(sync_contact.name)

    # then: a dead letter with the reason, the contact never sent
    row = Delivery.objects.get(consumer=sync_contact.name)
    assert row.status == Delivery.Status.FAILED
    assert "CRM address refused: localhost resolves only to loopback" in row.last_error
    assert User.objects.get(pk=event.user_id).email not in row.last_error
    assert crm.requests == []
