from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from config.celery_app import app
from events.models import Delivery
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"


def test_delivery_list_shows_each_consumer_with_its_dead_letters(staff_client: Client) -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(
        status=Delivery.Status.FAILED, last_error="Trace\nCRMPermanentError: HTTP 400"
    )

    response = staff_client.get(reverse("admin:events_delivery_changelist"))

    assert response.status_code == 200
    summary = {row["consumer"]: row for row in response.context["consumer_summary"]}
    assert (summary[CRM]["failed"], summary["audit.record_user_created"]["pending"]) == (1, 1)
    assert "Replay all failed" in response.text
    assert "CRMPermanentError: HTTP 400" in response.text


def test_replay_action_replays_the_selected_deliveries(
    staff_client: Client, django_capture_on_commit_callbacks
) -> None:
    UserCreatedFactory()
    delivery = Delivery.objects.get(consumer=CRM)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:events_delivery_changelist"),
            {"action": "replay_selected", "_selected_action": [delivery.pk]},
        )

    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING
    assert len(drain_queue(app, CRM)) == 1


def test_replay_all_failed_of_a_consumer(staff_client: Client, django_capture_on_commit_callbacks) -> None:
    for _ in range(2):
        UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED)
    url = reverse("admin:events_delivery_replay_failed", args=[CRM])

    assert staff_client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url)

    assert response.status_code == 302
    assert not Delivery.objects.filter(status=Delivery.Status.FAILED).exists()
    assert len(drain_queue(app, CRM)) == 1


def test_replay_all_failed_needs_a_staff_login(client: Client) -> None:
    response = client.post(reverse("admin:events_delivery_replay_failed", args=[CRM]))

    assert response.status_code == 302
    assert reverse("admin:login") in response.url


def test_event_page_lists_what_each_consumer_did(staff_client: Client, consumer_names: list[str]) -> None:
    event = UserCreatedFactory()

    response = staff_client.get(reverse("admin:events_event_change", args=[event.event_id]))

    assert response.status_code == 200
    for consumer in consumer_names:
        assert consumer in response.text


def test_a_delivery_page_shows_its_attempt_history(staff_client: Client) -> None:
    from events.testing import run_due

    UserCreatedFactory()
    run_due(CRM)
    delivery = Delivery.objects.get(consumer=CRM)

    response = staff_client.get(reverse("admin:events_delivery_change", args=[delivery.pk]))

    assert response.status_code == 200
    assert "attempt history" in response.text.lower()
    assert "36 attempts" in response.text


def test_delivery_list_tells_how_long_the_oldest_delivery_is_overdue(staff_client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    UserCreatedFactory()
    Delivery.objects.update(due_at=timezone.now() - timedelta(seconds=90))

    response = staff_client.get(reverse("admin:events_delivery_changelist"))

    assert 90 <= response.context["overdue_seconds"] < 100
    assert "oldest overdue for" in response.text
