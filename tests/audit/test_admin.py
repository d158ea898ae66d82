from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from audit.services import audit_entries_record_user_created
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_audit_log_is_read_only_even_for_superusers(staff_client: Client) -> None:
    audit_entries_record_user_created(events=[UserCreatedFactory()])
    entry = AuditEntry.objects.get()
    change_url = reverse("admin:audit_auditentry_change", args=[entry.pk])

    assert staff_client.get(reverse("admin:audit_auditentry_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert (
        staff_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    )
    view = staff_client.get(change_url)
    assert view.status_code == 200
    assert 'name="_save"' not in view.text
    assert staff_client.post(change_url, {"source": "tampered"}).status_code == 403
    assert AuditEntry.objects.get().source == "signup_form"


def test_audit_changelist_offers_no_bulk_delete(staff_client: Client) -> None:
    audit_entries_record_user_created(events=[UserCreatedFactory()])

    response = staff_client.get(reverse("admin:audit_auditentry_changelist"))

    assert "delete_selected" not in response.text
