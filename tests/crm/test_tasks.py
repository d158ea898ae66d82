from __future__ import annotations

import pytest

from crm.backends import locmem
from crm.models import ContactSync
from crm.tasks import sync_contact
from events.models import Delivery
from events.testing import run_due
from tests.factories import UserCreatedFactory

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
