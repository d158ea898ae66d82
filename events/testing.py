"""Helpers for tests of producers and consumers: capture what a block publishes, run consumers in process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from events import ledger
from events.draining import drain
from events.publishing import DomainEvent, publish_listeners
from events.registry import Consumer, consumers, get_consumer


@contextmanager
def capture_events() -> Iterator[list[DomainEvent]]:
    """Collect every event published inside the block (whether or not its transaction commits)."""
    captured: list[DomainEvent] = []
    publish_listeners.append(captured.append)
    try:
        yield captured
    finally:
        publish_listeners.remove(captured.append)


def run_due(*consumer_names: str) -> int:
    """Drain the due deliveries of the named consumers (default: all) in this process; return how many ran."""
    selected: list[Consumer] = [get_consumer(name) for name in consumer_names] or consumers()
    ran = 0
    for declared in selected:
        while due := ledger.due(consumer=declared.name).count():
            count = drain(declared)
            ran += count
            # A drain that ran nothing but expired some rows made progress: go on while it does.
            if count == 0 and ledger.due(consumer=declared.name).count() == due:
                break
    return ran
