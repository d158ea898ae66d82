"""Deadlines: how long a consumer's effect stays worth doing, and what a delivery past it says."""

from __future__ import annotations

from datetime import datetime, timedelta

from events.registry import Consumer, get_consumer

_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def describe(deadline: timedelta) -> str:
    """Say a deadline the way it was meant: 1 day, 3 days, 1 hour, 90 minutes."""
    seconds = int(deadline.total_seconds())
    for size, unit in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
    return f"{deadline.total_seconds():g} seconds"


def expires_at(consumer: Consumer, *, start: datetime) -> datetime | None:
    """Return when a delivery of consumer started at start (its event, or its replay) stops being worth doing."""
    return None if consumer.deadline is None else start + consumer.deadline


def expired_reason(consumer: str) -> str:
    """Return the error an expired delivery of consumer keeps: the deadline, never the event's data."""
    try:
        deadline = get_consumer(consumer).deadline
    except KeyError:
        deadline = None  # No longer declared: its rows keep the expiry they were given.
    within = f" ({describe(deadline)})" if deadline is not None else ""
    return f"expired: not done within its deadline{within}"


def deadline_problem(consumer: Consumer) -> str | None:
    """Return what is wrong with consumer's deadline, None if it is a positive duration or unset."""
    deadline = consumer.deadline
    if deadline is None:
        return None
    if not isinstance(deadline, timedelta):
        return f"The deadline of {consumer.name} must be a datetime.timedelta, not {type(deadline).__name__}."
    if deadline <= timedelta(0):
        return f"The deadline of {consumer.name} must be positive ({deadline} is not): every delivery would expire."
    return None
