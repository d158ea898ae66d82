from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from events import tallies
from events.models import Delivery, Tally
from events.testing import run_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"


def test_adding_creates_a_series_then_adds_to_it() -> None:
    tallies.add({("attempts", AUDIT, "done"): 2, ("attempts", AUDIT, "retry"): 0})
    tallies.add({("attempts", AUDIT, "done"): 3})

    assert tallies.read() == {("attempts", AUDIT, "done"): 5}


def test_a_lag_falls_in_the_bucket_of_its_upper_bound() -> None:
    assert [tallies.lag_bucket(lag) for lag in (0.0, 0.05, 0.051, 3600.0, 3601.0)] == [
        "0.05", "0.05", "0.1", "3600.0", "+Inf",
    ]  # fmt: skip


def test_a_published_event_and_its_done_deliveries_are_counted_in_their_transactions() -> None:
    UserCreatedFactory()
    Delivery.objects.filter(consumer=AUDIT).update(created_at=timezone.now() - timedelta(seconds=7))

    run_due(AUDIT)

    counts = tallies.read()
    assert counts[(tallies.EVENTS, "", "user.created")] == 1
    assert counts[(tallies.DELIVERIES, AUDIT, "done")] == 1
    assert counts[(tallies.ATTEMPTS, AUDIT, "done")] == 1
    assert counts[(tallies.LAG, AUDIT, "10.0")] == 1
    assert 7 <= counts[(tallies.LAG_SUM, AUDIT, "")] < 8


def test_the_migration_seeds_the_tallies_from_the_rows_there_are() -> None:
    # given: rows counted as they changed
    for _ in range(3):
        UserCreatedFactory()
    run_due(AUDIT)
    counted = tallies.read()
    Tally.objects.all().delete()

    # when
    importlib.import_module("events.migrations.0006_tallies").seed(apps, None)

    # then: the same counts, lags rounded as the rows store them
    seeded = tallies.read()
    assert seeded.keys() == counted.keys()
    assert all(seeded[key] == pytest.approx(counted[key], abs=0.01) for key in counted)
