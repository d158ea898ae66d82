"""Traces through the ledger: a publish span whose context the event keeps, an attempt span linked to it.

OpenTelemetry's API does nothing until a tracer provider is configured (config/tracing.py does
when OTEL_EXPORTER_OTLP_ENDPOINT is set): then the event stores the W3C trace context of its
publish, and each delivery attempt, in another process and maybe days later, is a span of its
own (`process <consumer>`, the messaging conventions) linked to that publish.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, StatusCode

if TYPE_CHECKING:
    from events.ledger import Claim

tracer = trace.get_tracer("relay.events")

SYSTEM = "relay"


@contextmanager
def publishing(*, name: str, event_id: UUID) -> Iterator[dict[str, str]]:
    """Run the block in a `publish <event>` span; yield the carrier of its context, for the event to keep."""
    with tracer.start_as_current_span(
        f"publish {name}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.destination.name": name,
            "messaging.message.id": str(event_id),
        },
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


def _links(trace_context: Mapping[str, str]) -> list[Link]:
    published = trace.get_current_span(propagate.extract(dict(trace_context))).get_span_context()
    return [Link(published)] if published.is_valid else []


def _attributes(claim: Claim) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": claim.consumer,
        "messaging.message.id": str(claim.event_id),
        "relay.delivery.id": claim.delivery_id,
        "relay.delivery.attempt": claim.number,
    }


@contextmanager
def processing(claim: Claim) -> Iterator[Span]:
    """Run one attempt in its `process <consumer>` span, linked to its event's publish; outcome() ends its story."""
    with tracer.start_as_current_span(
        f"process {claim.consumer}",
        kind=SpanKind.CONSUMER,
        links=_links(claim.trace_context),
        attributes=_attributes(claim),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def processed(claim: Claim, *, started_ns: int, result: str) -> None:
    """Record an attempt that already ran (one of an atomic batch) as its span, from started_ns to now."""
    span = tracer.start_span(
        f"process {claim.consumer}",
        kind=SpanKind.CONSUMER,
        links=_links(claim.trace_context),
        attributes=_attributes(claim),
        start_time=started_ns,
    )
    outcome(span, result)
    span.end()


def outcome(span: Span, result: str) -> None:
    """Put an attempt's outcome (done, retry, failed, lost) on its span; an error status unless done."""
    span.set_attribute("relay.delivery.outcome", result)
    if result != "done":
        span.set_status(StatusCode.ERROR, result)
