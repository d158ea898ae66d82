"""The event layer's settings: every EVENTS_* setting, its default and its check, in one place.

The rest of the event layer reads `events_settings()`, never `django.conf.settings.EVENTS_*`, so a
project that sets none of them gets the defaults below, and `manage.py check` reports a bad value
(events.E013) instead of a crash at import time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, kw_only=True)
class EventsSettings:
    """The EVENTS_* settings in force (the field's name, upper-cased, after EVENTS_)."""

    #: Seconds between sweeps: each pass rings every consumer with due deliveries once.
    sweep_interval: float = 10.0
    #: The Celery queue of the sweep and the daily prune (busy consumers never starve it).
    sweep_queue: str = "events.sweep"
    #: Seconds a running delivery's lease lasts; a killed worker's deliveries are due again after it.
    lease: float = 12.0
    #: Seconds between renewals of the leases a live drain holds (a lease lasts at least three).
    lease_renew_every: float = 4.0
    #: The default retry schedule: waits from retry_first seconds, doubling, capped at retry_cap,
    #: for retry_max_attempts attempts (about a day: an hour's outage makes no dead letter).
    retry_first: float = 2.0
    retry_cap: float = 3600.0
    retry_max_attempts: int = 36
    #: While a consumer's doorbell is queued and unstarted, rings add no message; a lost doorbell
    #: holds back rings for at most this long (the sweep rings regardless). Unset: two sweep intervals.
    doorbell_ttl: float | None = None
    #: Deliveries a drain claims at once, overriding every consumer's own batch_size (0: their own).
    batch_size: int = 0
    #: Days after completion that done deliveries and their attempts are deleted (daily, by beat).
    retention_days: int = 30
    #: The hard time limit of a drain (Celery's task_time_limit); it starts nothing after half of it.
    task_time_limit: int = 60
    #: Seconds between two probes of a consumer whose circuit is open (its breaker may declare its own).
    circuit_probe_every: float = 30.0

    @property
    def doorbell_ttl_seconds(self) -> float:
        return 2 * self.sweep_interval if self.doorbell_ttl is None else self.doorbell_ttl


def setting_name(field_name: str) -> str:
    return f"EVENTS_{field_name.upper()}"


DEFAULTS = EventsSettings()
_NAMES = {setting_name(field.name) for field in fields(EventsSettings)}


@functools.cache
def events_settings() -> EventsSettings:
    """Return the EVENTS_* settings in force (defaults for those the project does not set)."""
    given = {
        field.name: getattr(settings, setting_name(field.name), getattr(DEFAULTS, field.name))
        for field in fields(EventsSettings)
    }
    return EventsSettings(**given)


@receiver(setting_changed, dispatch_uid="events.conf.reload")
def _reload(*, setting: str, **kwargs: Any) -> None:
    """Read the settings again when a test overrides one of them."""
    if setting in _NAMES:
        events_settings.cache_clear()


def problems(conf: EventsSettings | None = None) -> list[str]:
    """Return what is wrong with the settings, one sentence each naming the setting (none if all is well)."""
    conf = conf or events_settings()
    found: list[str] = []
    for field in fields(EventsSettings):
        value = getattr(conf, field.name)
        name = setting_name(field.name)
        if field.name == "sweep_queue":
            if not isinstance(value, str) or not value:
                found.append(f"{name} must be a queue name, not {value!r}.")
            continue
        if field.name == "doorbell_ttl" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append(f"{name} must be a number, not {value!r}.")
            continue
        wants_int = field.type == "int"
        if wants_int and not isinstance(value, int):
            found.append(f"{name} must be a whole number, not {value!r}.")
        elif field.name in ("batch_size", "retry_first") and value < 0:
            found.append(f"{name} must be 0 or more, not {value!r}.")
        elif field.name not in ("batch_size", "retry_first") and value <= 0:
            found.append(f"{name} must be more than 0, not {value!r}.")
    return found
