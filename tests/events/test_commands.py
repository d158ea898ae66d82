from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from config.celery_app import app
from devtools.redis_server import free_port
from events.models import Delivery
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

CRM = "crm.sync_contact"


def replay(*args: str) -> str:
    out = StringIO()
    # The command rings once its changes commit: run those callbacks as a real commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("replay_events", *args, stdout=out)
    return out.getvalue()


def test_replay_one_consumer_for_one_event() -> None:
    event, other = UserCreatedFactory(), UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.DONE)

    output = replay("--consumer", CRM, "--event", str(event.event_id))

    assert f"Replayed 1 delivery: due now; rang {CRM}." in output
    assert Delivery.objects.get(event_id=event.event_id, consumer=CRM).status == Delivery.Status.PENDING
    assert Delivery.objects.get(event_id=other.event_id, consumer=CRM).status == Delivery.Status.DONE
    assert len(drain_queue(app, CRM)) == 1


def test_replay_every_failed_delivery_of_an_app() -> None:
    first, second = UserCreatedFactory(), UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED, last_error="HTTP 400")
    Delivery.objects.filter(consumer="audit.record_user_created").update(status=Delivery.Status.FAILED)

    output = replay("--consumer", "crm", "--failed")

    assert f"Replayed 2 deliveries: due now; rang {CRM}." in output
    assert set(Delivery.objects.filter(consumer=CRM).values_list("event_id", "status")) == {
        (first.event_id, Delivery.Status.PENDING),
        (second.event_id, Delivery.Status.PENDING),
    }
    assert len(drain_queue(app, CRM)) == 1
    assert Delivery.objects.filter(consumer="audit.record_user_created", status=Delivery.Status.FAILED).count() == 2


def test_replay_since_backfills_a_consumer_added_later() -> None:
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).delete()

    output = replay("--consumer", CRM, "--since", event.occurred_at.date().isoformat())

    assert "backfill" in output
    assert Delivery.objects.get(event_id=event.event_id, consumer=CRM).status == Delivery.Status.PENDING
    assert len(drain_queue(app, CRM)) == 1


def test_replay_with_the_broker_down_says_the_sweep_will_ring() -> None:
    # given
    event = UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED)

    # when: the broker is a closed port
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        output = replay("--consumer", CRM, "--event", str(event.event_id))

    # then
    assert "Replayed 1 delivery: due now, but the broker is unavailable" in output
    assert f"the sweep will ring {CRM} once it is back." in output
    assert "rang" not in output
    assert Delivery.objects.get(consumer=CRM).status == Delivery.Status.PENDING
    assert drain_queue(app, CRM) == []


def test_replay_of_nothing_says_so() -> None:
    UserCreatedFactory()

    output = replay("--consumer", CRM, "--failed")

    assert "Replayed 0 deliveries." in output


def test_replay_since_leaves_done_deliveries_alone() -> None:
    done, failed = UserCreatedFactory(), UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM, event_id=done.event_id).update(
        status=Delivery.Status.DONE, due_at=None, attempts=1
    )
    Delivery.objects.filter(consumer=CRM, event_id=failed.event_id).update(status=Delivery.Status.FAILED)

    output = replay("--consumer", CRM, "--since", done.occurred_at.date().isoformat())

    assert f"for event {done.event_id}" not in output
    assert f"for event {failed.event_id}" in output
    kept = Delivery.objects.get(consumer=CRM, event_id=done.event_id)
    assert (kept.status, kept.due_at, kept.attempts) == (Delivery.Status.DONE, None, 1)
    assert Delivery.objects.get(consumer=CRM, event_id=failed.event_id).status == Delivery.Status.PENDING


def test_dry_run_changes_nothing() -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=CRM).update(status=Delivery.Status.FAILED)

    output = replay("--consumer", CRM, "--failed", "--dry-run")

    assert "Would replay crm.sync_contact" in output
    assert "nothing changed" in output
    assert Delivery.objects.get(consumer=CRM).status == Delivery.Status.FAILED
    assert drain_queue(app, CRM) == []


def test_replay_needs_a_selection_and_known_consumers() -> None:
    with pytest.raises(CommandError, match="Say which deliveries"):
        replay("--consumer", CRM)
    with pytest.raises(CommandError, match="Known"):
        replay("--consumer", "nosuchapp", "--failed")
    for since in ("last tuesday", "2026-02-30", "2026-02-30T10:00"):
        with pytest.raises(CommandError, match="--since takes a date"):
            replay("--since", since)
