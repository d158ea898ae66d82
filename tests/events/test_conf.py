from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.test import override_settings

from events.conf import DEFAULTS, events_settings, problems
from events.retry import RetrySchedule


def test_a_project_that_sets_no_events_setting_gets_the_documented_defaults(settings) -> None:
    for name in [name for name in dir(django_settings) if name.startswith("EVENTS_")]:
        delattr(settings, name)

    assert events_settings() == DEFAULTS
    assert events_settings().doorbell_ttl_seconds == 2 * DEFAULTS.sweep_interval
    assert RetrySchedule().attempt_limit == DEFAULTS.retry_max_attempts
    assert problems() == []


def test_an_overridden_setting_is_read_at_once(settings) -> None:
    settings.EVENTS_LEASE = 99.0

    assert events_settings().lease == 99.0


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("EVENTS_LEASE", "twelve", "EVENTS_LEASE must be a number, not 'twelve'."),
        ("EVENTS_LEASE", -1, "EVENTS_LEASE must be more than 0, not -1."),
        ("EVENTS_BATCH_SIZE", 2.5, "EVENTS_BATCH_SIZE must be a whole number, not 2.5."),
        ("EVENTS_BATCH_SIZE", -1, "EVENTS_BATCH_SIZE must be 0 or more, not -1."),
        ("EVENTS_SWEEP_QUEUE", "", "EVENTS_SWEEP_QUEUE must be a queue name, not ''."),
    ],
)
def test_check_reports_an_invalid_setting_by_name(name: str, value: object, said: str) -> None:
    with override_settings(**{name: value}):
        messages = [message for message in run_checks(tags=["events"]) if message.id == "events.E013"]

    assert [message.msg for message in messages] == [said]
