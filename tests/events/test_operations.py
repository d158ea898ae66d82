"""Operators pause, resume and replay; each is written to the audit log with its actor."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from config.celery_app import app
from events import sweep
from events.api import get_consumer
from events.models import ConsumerControl, Delivery
from events.testing import run_due
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory, UserFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"
AUDIT_OPERATORS = "audit.record_operator_action"


def _audited(action: str) -> list[AuditEntry]:
    run_due(AUDIT_OPERATORS)
    return list(AuditEntry.objects.filter(action=action))


def test_a_paused_consumer_runs_nothing_and_its_backlog_drains_on_resume(
    staff_client: Client, staff_user, django_capture_on_commit_callbacks
) -> None:
    # given: the CRM consumer paused, then two signups
    staff_client.post(reverse("admin:events_consumer_pause", args=[CRM]))
    for _ in range(2):
        UserCreatedFactory()

    # when: workers and the sweep come by
    run_due(CRM)
    rang = sweep.sweep()

    # then: the backlog waits, due, and the sweep leaves the paused consumer alone
    assert Delivery.objects.filter(consumer=CRM, status=Delivery.Status.PENDING).count() == 2
    assert CRM not in rang
    assert ConsumerControl.objects.get(consumer=CRM).paused

    # when: resumed
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:events_consumer_resume", args=[CRM]))

    # then: its doorbell rings and the backlog drains
    assert response.status_code == 302
    assert len(drain_queue(app, CRM)) == 1
    assert run_due(CRM) == 2
    assert not Delivery.objects.filter(consumer=CRM).exclude(status=Delivery.Status.DONE).exists()
    paused, resumed = _audited(AuditEntry.Action.CONSUMER_PAUSED), _audited(AuditEntry.Action.CONSUMER_RESUMED)
    assert [(entry.actor_id, entry.details["consumers"]) for entry in paused + resumed] == [
        (staff_user.pk, [CRM]),
        (staff_user.pk, [CRM]),
    ]
    assert resumed[0].details["pending"] == 2


def test_pausing_twice_changes_nothing_the_second_time(staff_client: Client) -> None:
    for _ in range(2):
        staff_client.post(reverse("admin:events_consumer_pause", args=[CRM]))

    assert len(_audited(AuditEntry.Action.CONSUMER_PAUSED)) == 1


def test_replay_from_the_admin_is_audited_with_its_actor(staff_client: Client, staff_user) -> None:
    UserCreatedFactory()
    delivery = Delivery.objects.get(consumer=CRM)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, last_error="CRMPermanentError")

    response = staff_client.post(reverse("admin:events_delivery_replay", args=[delivery.pk]))

    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING
    [entry] = _audited(AuditEntry.Action.DELIVERIES_REPLAYED)
    assert (entry.actor_id, entry.target_user_id, entry.source) == (staff_user.pk, None, "admin")
    assert entry.details == {"consumers": [CRM], "count": 1, "delivery": delivery.pk}


def test_replay_since_a_date_backfills_from_the_dashboard(staff_client: Client) -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED)

    response = staff_client.post(reverse("admin:events_delivery_replay_since", args=[CRM]), {"since": "2000-01-01"})

    assert response.status_code == 302
    assert Delivery.objects.get(consumer=CRM).status == Delivery.Status.PENDING
    assert _audited(AuditEntry.Action.DELIVERIES_REPLAYED)[0].details["since"].startswith("2000-01-01")


def test_replay_from_the_command_line_is_audited_without_an_actor() -> None:
    from django.core.management import call_command

    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED)

    call_command("replay_events", "--consumer", CRM, "--failed", stdout=None)

    [entry] = _audited(AuditEntry.Action.DELIVERIES_REPLAYED)
    assert (entry.actor_id, entry.source, entry.details["failed"]) == (None, "cli", True)


def _staff_with(*codenames: str) -> Client:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="events", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_pause_and_replay_need_their_own_permissions() -> None:
    UserCreatedFactory()
    delivery = Delivery.objects.get(consumer=CRM)
    viewer = _staff_with("view_delivery")

    assert viewer.post(reverse("admin:events_consumer_pause", args=[CRM])).status_code == 403
    assert viewer.post(reverse("admin:events_delivery_replay", args=[delivery.pk])).status_code == 403
    assert viewer.post(reverse("admin:events_delivery_replay_failed", args=[CRM])).status_code == 403
    changelist = viewer.get(reverse("admin:events_delivery_changelist"))
    assert changelist.status_code == 200 and "replay_selected" not in changelist.text
    assert not ConsumerControl.objects.exists()

    operator = _staff_with("view_delivery", "pause_consumer", "replay_delivery")
    assert operator.post(reverse("admin:events_consumer_pause", args=[CRM])).status_code == 302
    assert operator.post(reverse("admin:events_delivery_replay", args=[delivery.pk])).status_code == 302
    assert "replay_selected" in operator.get(reverse("admin:events_delivery_changelist")).text


def test_pause_and_replay_answer_only_posts_and_known_consumers(staff_client: Client) -> None:
    assert staff_client.get(reverse("admin:events_consumer_pause", args=[CRM])).status_code == 405
    assert staff_client.post(reverse("admin:events_consumer_pause", args=["nobody.knows"])).status_code == 404
    assert staff_client.post(reverse("admin:events_delivery_replay", args=[987654])).status_code == 404


def test_the_paused_consumer_s_doorbell_is_answered_without_work() -> None:
    UserCreatedFactory()
    ConsumerControl.objects.create(consumer=CRM, paused=True)

    assert run_due(CRM) == 0
    assert get_consumer(CRM).name == CRM
    assert Delivery.objects.get(consumer=CRM).status == Delivery.Status.PENDING


def test_a_claim_after_a_pause_takes_nothing_even_past_the_drain_s_own_check() -> None:
    from events import ledger

    UserCreatedFactory()
    ConsumerControl.objects.create(consumer=CRM, paused=True)

    # The drain checked before the pause committed; its claim comes after.
    assert ledger.claim(consumer=CRM, owner="worker:1", limit=10) == []
    ConsumerControl.objects.filter(consumer=CRM).update(paused=False)
    assert len(ledger.claim(consumer=CRM, owner="worker:1", limit=10)) == 1
