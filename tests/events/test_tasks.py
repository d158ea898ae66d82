from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery_app import app
from events.models import Delivery
from events.tasks import sweep_deliveries
from tests.broker import drain_queue
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_sweep_task_enqueues_what_is_overdue() -> None:
    event = UserCreatedFactory()
    Delivery.objects.update(due_at=timezone.now() - timedelta(seconds=1))

    assert sweep_deliveries.apply().get() == 5
    assert [task.kwargs for task in drain_queue(app, "crm.sync_contact")] == [{"event_id": str(event.event_id)}]


def test_sweep_is_scheduled_by_beat_at_the_configured_interval(settings) -> None:
    [entry] = [entry for entry in app.conf.beat_schedule.values() if entry["task"] == "events.tasks.sweep_deliveries"]

    assert entry["schedule"] == settings.EVENTS_SWEEP_INTERVAL
