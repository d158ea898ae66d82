"""The dashboard: a catalogue generated from the running code, each consumer's state and lag, and charts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.api import consumers
from events.models import ConsumerControl, Delivery, SweepRun
from events.operator.measures import format_seconds, percentile
from events.testing import run_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"
ADMINS = "notifications.notify_admins"


def test_the_catalogue_lists_every_declared_consumer_with_its_task_queue_and_retries(staff_client: Client) -> None:
    response = staff_client.get(reverse("admin:events_dashboard"))

    assert response.status_code == 200
    for declared in consumers():
        assert declared.name in response.text
        assert declared.task.name in response.text
        assert declared.retry.describe() in response.text
    assert "user.created" in response.text and "events.operator_acted" in response.text


def test_each_consumer_shows_its_deliveries_by_state_and_its_lag(staff_client: Client) -> None:
    # given: three signups, all done but the CRM's: one failed, one due, one waiting for a retry
    for _ in range(3):
        UserCreatedFactory()
    run_due(*[declared.name for declared in consumers() if declared.name != CRM])
    crm = list(Delivery.objects.filter(consumer=CRM).order_by("pk"))
    Delivery.objects.filter(pk=crm[0].pk).update(status=Delivery.Status.FAILED, last_error="CRMPermanentError")
    Delivery.objects.filter(pk=crm[1].pk).update(due_at=timezone.now() - timedelta(minutes=5))
    Delivery.objects.filter(pk=crm[2].pk).update(due_at=timezone.now() + timedelta(minutes=5))

    response = staff_client.get(reverse("admin:events_dashboard"))

    rows = {row["name"]: row for entry in response.context["catalogue"] for row in entry["consumers"]}
    assert (rows[CRM]["due"], rows[CRM]["waiting"], rows[CRM]["failed"], rows[CRM]["done"]) == (1, 1, 1, 0)
    assert rows[CRM]["overdue"].endswith("min")
    audit = rows["audit.record_user_created"]
    assert (audit["done"], audit["due"], audit["lag_count"]) == (3, 0, 3)
    assert audit["lag_p50"] != "—"
    assert response.text.count("<svg") >= 3  # events per day, throughput and lag, drawn by the server


def test_the_dashboard_says_when_the_sweep_is_not_running(staff_client: Client, settings) -> None:
    SweepRun.objects.update_or_create(pk=1, defaults={"started_at": timezone.now() - timedelta(minutes=10)})

    late = staff_client.get(reverse("admin:events_dashboard"))
    SweepRun.objects.update(started_at=timezone.now())
    fresh = staff_client.get(reverse("admin:events_dashboard"))

    assert late.context["sweep_late"] and "is <code>celery -A config beat</code> running?" in late.text
    assert not fresh.context["sweep_late"]


def test_a_paused_consumer_is_shown_paused_with_a_resume_button(staff_client: Client) -> None:
    ConsumerControl.objects.create(consumer=CRM, paused=True)

    response = staff_client.get(reverse("admin:events_dashboard"))

    assert reverse("admin:events_consumer_resume", args=[CRM]) in response.text
    assert reverse("admin:events_consumer_pause", args=["audit.record_user_created"]) in response.text


def test_the_dashboard_is_for_staff_only(client: Client) -> None:
    response = client.get(reverse("admin:events_dashboard"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_durations_and_percentiles_read_as_a_person_would() -> None:
    assert [format_seconds(s) for s in (None, 0.25, 3.21, 600, 9000)] == ["—", "250 ms", "3.2 s", "10 min", "2.5 h"]
    assert percentile(list(range(1, 101)), 0.5) == 50 and percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([], 0.5) is None


def test_rows_of_a_consumer_no_longer_declared_stay_visible(staff_client: Client) -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(consumer="crm.old_name", status=Delivery.Status.FAILED)

    response = staff_client.get(reverse("admin:events_dashboard"))

    assert [(row["consumer"], row["failed"]) for row in response.context["undeclared"]] == [("crm.old_name", 1)]
    assert "crm.old_name" in response.text


def test_the_breadcrumbs_are_the_admin_s_own_and_name_the_app_as_every_page_does(staff_client: Client) -> None:
    response = staff_client.get(reverse("admin:events_dashboard"))

    crumbs = response.text.split('<ol class="breadcrumbs">', 1)[1].split("</ol>", 1)[0]
    assert '<div class="breadcrumbs">' not in response.text
    assert f'<a href="{reverse("admin:app_list", args=["events"])}">Domain events</a>' in crumbs
    assert '<li aria-current="page">Dashboard</li>' in crumbs


def test_the_catalogue_lists_the_domain_events_before_the_event_layer_s_own(staff_client: Client) -> None:
    response = staff_client.get(reverse("admin:events_dashboard"))

    names = [entry["event"] for entry in response.context["catalogue"]]
    assert names[-1] == "events.operator_acted"
    assert names.index("user.created") < names.index("events.operator_acted")
    assert response.text.index('id="event-usercreated"') < response.text.index('id="event-eventsoperator_acted"')


def test_the_lag_chart_draws_nothing_where_no_delivery_was_done(staff_client: Client) -> None:
    # given: one delivery done two seconds after its commit, just now: one bucket of twelve has data
    UserCreatedFactory()
    now = timezone.now()
    Delivery.objects.filter(consumer=CRM).update(
        status=Delivery.Status.DONE, created_at=now - timedelta(seconds=2), completed_at=now
    )

    chart = str(staff_client.get(reverse("admin:events_dashboard")).context["chart_lag"])

    assert "<polyline" not in chart and chart.count("<circle") == 1
    assert ">lag p95, s</text>" in chart


def test_each_consumer_shows_its_expired_deliveries_and_its_deadline(staff_client: Client) -> None:
    UserCreatedFactory(occurred_at=timezone.now() - timedelta(days=2))
    run_due()

    response = staff_client.get(reverse("admin:events_dashboard"))

    rows = {row["name"]: row for entry in response.context["catalogue"] for row in entry["consumers"]}
    assert (rows[ADMINS]["expired"], rows[ADMINS]["failed"], rows[ADMINS]["deadline"]) == (1, 0, "1 day")
    assert rows["audit.record_user_created"]["deadline"] == ""
    assert f"?consumer={ADMINS}&amp;status=expired" in response.text
