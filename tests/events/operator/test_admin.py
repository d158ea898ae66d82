from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from config.celery_app import app
from events.models import Delivery, DeliveryAttempt
from events.operator.measures import format_moment
from events.replay import deliveries_make_due
from events.testing import run_due
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory, UserFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"
ADMINS = "notifications.notify_admins"


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


@pytest.mark.parametrize("since", ["2026-02-30", "2026-13-01", "yesterday", ""])
def test_replay_since_a_day_that_does_not_exist_is_told_not_a_500(staff_client: Client, since: str) -> None:
    UserCreatedFactory()
    url = reverse("admin:events_delivery_replay_since", args=[CRM])

    response = staff_client.post(url, {"since": since}, follow=True)

    assert response.status_code == 200
    assert "Give the date to replay since (YYYY-MM-DD)." in response.text
    assert not AuditEntry.objects.filter(action="deliveries.replayed").exists()


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


def test_the_attempt_history_tells_the_second_and_the_date_where_it_changes(staff_client: Client) -> None:
    # given: an attempt started a second before midnight, finished after it
    UserCreatedFactory()
    run_due(CRM)
    delivery = Delivery.objects.get(consumer=CRM)
    started = datetime(2026, 1, 2, 23, 59, 59, tzinfo=UTC)
    DeliveryAttempt.objects.filter(delivery=delivery).update(
        started_at=started, finished_at=started + timedelta(seconds=2)
    )

    response = staff_client.get(reverse("admin:events_delivery_change", args=[delivery.pk]))

    assert "2026-01-02 23:59:59" in response.text and "2026-01-03 00:00:01" in response.text


def test_format_moment_gives_the_date_only_where_the_day_differs() -> None:
    started = datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)

    assert format_moment(started + timedelta(seconds=3), day_of=started) == "10:00:08"
    assert format_moment(started + timedelta(days=1), day_of=started) == "2026-01-03 10:00:05"
    assert (format_moment(started), format_moment(None)) == ("2026-01-02 10:00:05", "—")


def test_delivery_list_tells_how_long_the_oldest_delivery_is_overdue(staff_client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    UserCreatedFactory()
    Delivery.objects.update(due_at=timezone.now() - timedelta(seconds=90))

    response = staff_client.get(reverse("admin:events_delivery_changelist"))

    assert 90 <= response.context["overdue_seconds"] < 100
    assert "oldest overdue for" in response.text


def test_a_delivery_page_is_read_only_with_a_replay_button(staff_client: Client) -> None:
    UserCreatedFactory()
    delivery = Delivery.objects.get(consumer=CRM)

    response = staff_client.get(reverse("admin:events_delivery_change", args=[delivery.pk]))

    assert response.status_code == 200
    assert 'name="_save"' not in response.text and 'name="_continue"' not in response.text
    assert reverse("admin:events_delivery_replay", args=[delivery.pk]) in response.text


def test_deliveries_are_found_by_the_user_s_e_mail_address(staff_client: Client) -> None:
    ann = UserCreatedFactory(user_id=UserFactory(email="ann@example.com").pk)
    UserCreatedFactory(user_id=UserFactory(email="bob@example.com").pk)

    response = staff_client.get(reverse("admin:events_delivery_changelist"), {"q": "ann@example"})
    events = staff_client.get(reverse("admin:events_event_changelist"), {"q": "ann@example"})
    nonsense = staff_client.get(reverse("admin:events_delivery_changelist"), {"q": "not-a-uuid"})

    assert {d.event_id for d in response.context["cl"].result_list} == {ann.event_id}
    assert [e.pk for e in events.context["cl"].result_list] == [ann.event_id]
    assert nonsense.status_code == 200 and not nonsense.context["cl"].result_list
    # Joined through the user: the ledger holds the user's id, never the address.
    assert not Delivery.objects.filter(last_error__contains="ann@").exists()


def test_a_done_delivery_shows_no_stale_error_or_due_time(staff_client: Client) -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(
        status=Delivery.Status.DONE, last_error="TimeoutError: an old one", completed_at=timezone.now()
    )

    response = staff_client.get(reverse("admin:events_delivery_changelist"), {"consumer": CRM})

    assert "an old one" not in response.text


def test_no_bulk_delete_on_the_ledger_or_side_effect_records(staff_client: Client) -> None:
    from django.contrib import admin as django_admin

    from events.models import Event

    for model in (Delivery, Event, *_side_effect_models()):
        model_admin = django_admin.site._registry[model]
        request = staff_client.get(reverse("admin:index")).wsgi_request
        assert "delete_selected" not in model_admin.get_actions(request), model


def _side_effect_models() -> list[type]:
    from analytics.models import AnalyticsEvent
    from audit.models import AuditEntry
    from crm.models import ContactSync
    from notifications.models import Notification

    return [AnalyticsEvent, AuditEntry, ContactSync, Notification]


@pytest.mark.parametrize("model_name", ["analytics.analyticsevent", "audit.auditentry", "notifications.notification"])
def test_side_effect_records_are_found_by_the_user_s_e_mail_address(staff_client: Client, model_name: str) -> None:
    for email in ("ann@example.com", "bob@example.com"):
        UserCreatedFactory(user_id=UserFactory(email=email).pk)
    run_due()
    app_label, model = model_name.split(".")

    response = staff_client.get(reverse(f"admin:{app_label}_{model}_changelist"), {"q": "ann@"})

    assert response.status_code == 200
    results = list(response.context["cl"].result_list)
    assert results and all(getattr(r, "user_id", None) or r.target_user_id for r in results)
    ann = UserFactory._meta.model.objects.get(email="ann@example.com").pk
    assert {getattr(r, "user_id", None) or r.target_user_id for r in results} == {ann}


def test_the_summary_counts_retrying_and_failed_deliveries_beside_the_overdue(staff_client: Client) -> None:
    for _ in range(3):
        UserCreatedFactory()
    crm = list(Delivery.objects.filter(consumer=CRM).order_by("pk"))
    later = timezone.now() + timedelta(minutes=10)
    Delivery.objects.filter(pk=crm[0].pk).update(
        attempts_since_replay=9, attempts=9, due_at=later, last_error="TimeoutError"
    )
    Delivery.objects.filter(pk=crm[1].pk).update(status=Delivery.Status.FAILED, last_error="CRMPermanentError")

    response = staff_client.get(reverse("admin:events_delivery_changelist"))

    assert (response.context["retrying"], response.context["failed_total"]) == (1, 1)
    assert "1 retrying" in response.text and "1 failed for good" in response.text


def test_a_first_try_success_reads_one_attempt_and_never_a_retry(staff_client: Client) -> None:
    # given: the CRM's delivery done at its first attempt
    UserCreatedFactory()
    run_due(CRM)
    delivery = Delivery.objects.get(consumer=CRM, status=Delivery.Status.DONE, attempts=1)

    pages = [
        staff_client.get(reverse("admin:events_delivery_change", args=[delivery.pk])).text,
        staff_client.get(reverse("admin:events_delivery_changelist")).text,
        staff_client.get(reverse("admin:events_event_change", args=[delivery.event_id])).text,
        staff_client.get(reverse("admin:events_dashboard")).text,
    ]

    assert "<label>Attempts:</label>" in pages[0] and '<div class="readonly">1</div>' in pages[0]
    assert '<td class="field-attempts">1</td>' in pages[1]
    assert all(not re.search(r"(?i)retries\s*(:|</)", page) for page in pages)


AUDIT = "audit.record_user_created"


def test_replaying_a_done_delivery_asks_first_then_says_the_effect_is_not_repeated(staff_client: Client) -> None:
    # given: the audit entry of a signup recorded
    event = UserCreatedFactory()
    run_due(AUDIT)
    delivery = Delivery.objects.get(consumer=AUDIT, status=Delivery.Status.DONE)
    url = reverse("admin:events_delivery_replay", args=[delivery.pk])
    back = reverse("admin:events_delivery_changelist")

    # when: the Replay button is pressed, then confirmed
    asked = staff_client.post(url, {"next": back})
    untouched = Delivery.objects.get(pk=delivery.pk).status
    confirmed = staff_client.post(url, {"next": back, "confirmed": "yes"}, follow=True)
    run_due(AUDIT)

    # then: nothing ran before the confirmation; after it, one more attempt and still one entry
    assert asked.status_code == 200 and "Yes, replay" in asked.text
    assert "admin/events/delivery/replay_confirmation.html" in [t.name for t in asked.templates]
    assert untouched == Delivery.Status.DONE
    assert confirmed.redirect_chain[-1][0] == back
    [message] = [str(m) for m in confirmed.context["messages"]]
    assert "was done" in message and "does not repeat the effect" in message
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DONE, 2)
    assert AuditEntry.objects.filter(event_id=event.event_id).count() == 1


def test_replaying_selected_done_deliveries_asks_first_as_django_s_delete_action_does(staff_client: Client) -> None:
    UserCreatedFactory()
    run_due(AUDIT)
    done = Delivery.objects.get(consumer=AUDIT)
    failed = Delivery.objects.get(consumer=CRM)
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED)
    changelist = reverse("admin:events_delivery_changelist")
    selection = {"action": "replay_selected", "_selected_action": [done.pk, failed.pk]}

    asked = staff_client.post(changelist, selection)
    untouched = sorted(Delivery.objects.filter(pk__in=[done.pk, failed.pk]).values_list("status", flat=True))
    confirmed = staff_client.post(changelist, {**selection, "post": "yes"}, follow=True)

    assert asked.status_code == 200 and "1 of the 2 selected deliveries are done" in asked.text
    assert untouched == [Delivery.Status.DONE, Delivery.Status.FAILED]
    [message] = [str(m) for m in confirmed.context["messages"]]
    assert message.startswith("Replayed 2 deliveries") and "1 of them was done" in message
    assert set(Delivery.objects.filter(pk__in=[done.pk, failed.pk]).values_list("status", flat=True)) == {"pending"}


def test_the_delivery_list_links_each_user_in_the_same_queries_however_many_rows(staff_client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("admin:events_delivery_changelist")
    first = UserFactory()
    UserCreatedFactory(user_id=first.pk)
    with CaptureQueriesContext(connection) as one_signup:
        staff_client.get(url)
    for _ in range(4):
        UserCreatedFactory(user_id=UserFactory().pk)
    with CaptureQueriesContext(connection) as five_signups:
        response = staff_client.get(url)

    assert len(five_signups) == len(one_signup)
    assert reverse("admin:users_user_change", args=[first.pk]) in response.text
    assert '<th scope="col" class="sortable column-updated">' in response.text


def test_the_delivery_list_shows_the_gist_of_a_long_error_and_its_full_text_on_hover(staff_client: Client) -> None:
    UserCreatedFactory()
    error = "Traceback (most recent call last):\n  ...\nCRMTransientError: " + "the CRM timed out " * 20
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED, last_error=error)

    response = staff_client.get(reverse("admin:events_delivery_changelist"))

    [(title, shown)] = re.findall(r'<span class="relay-error" title="([^"]+)">([^<]*)</span>', response.text)
    assert title.startswith("Traceback (most recent call last):") and title.endswith("the CRM timed out")
    assert shown.startswith("CRMTransientError: the CRM timed out") and len(shown) <= 120 and shown.endswith("…")


def test_the_delivery_list_filters_by_lane_and_by_expired_and_counts_the_expired(staff_client: Client) -> None:
    # given: an old signup whose admin notice expired, replayed deliveries in the backlog, a new signup
    UserCreatedFactory(occurred_at=timezone.now() - timedelta(days=2))
    run_due(ADMINS)
    deliveries_make_due(deliveries=list(Delivery.objects.filter(consumer=CRM)))
    UserCreatedFactory()

    # when
    expired = staff_client.get(reverse("admin:events_delivery_changelist"), {"status": "expired"})
    backlog = staff_client.get(reverse("admin:events_delivery_changelist"), {"lane": "backlog"})
    live = staff_client.get(reverse("admin:events_delivery_changelist"), {"lane": "live", "consumer": CRM})

    # then
    assert [row.consumer for row in expired.context["cl"].result_list] == [ADMINS]
    assert "expired: not done within its deadline (1 day)" in expired.text
    assert [(row.consumer, row.backlog) for row in backlog.context["cl"].result_list] == [(CRM, True)]
    assert "backlog" in backlog.text
    assert [row.backlog for row in live.context["cl"].result_list] == [False]
    summary = {row["consumer"]: row for row in expired.context["consumer_summary"]}
    assert (summary[ADMINS]["expired"], summary[ADMINS]["failed"]) == (1, 0)


def test_the_replay_action_runs_an_expired_delivery_again(
    staff_client: Client, django_capture_on_commit_callbacks
) -> None:
    UserCreatedFactory(occurred_at=timezone.now() - timedelta(days=2))
    run_due(ADMINS)
    delivery = Delivery.objects.get(consumer=ADMINS)

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("admin:events_delivery_changelist"),
            {"action": "replay_selected", "_selected_action": [delivery.pk]},
        )
    run_due(ADMINS)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.backlog) == (Delivery.Status.DONE, True)


def test_a_delivery_page_says_its_lane_and_its_deadline(staff_client: Client) -> None:
    UserCreatedFactory(occurred_at=timezone.now() - timedelta(days=2))
    run_due(ADMINS)
    expired = Delivery.objects.get(consumer=ADMINS)
    deliveries_make_due(deliveries=[Delivery.objects.get(consumer=CRM)])
    replayed = Delivery.objects.get(consumer=CRM)

    expired_page = staff_client.get(reverse("admin:events_delivery_change", args=[expired.pk]))
    replayed_page = staff_client.get(reverse("admin:events_delivery_change", args=[replayed.pk]))

    assert "expired at" in expired_page.text and "live (a new event)" in expired_page.text
    assert "backlog (made due by a replay or a backfill)" in replayed_page.text
    assert "none: it never expires" in replayed_page.text
