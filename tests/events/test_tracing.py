from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from crm.backends.base import CRMTransientError
from events.models import Event
from events.testing import run_due
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db

AUDIT = "audit.record_user_created"
CRM = "crm.sync_contact"


def test_a_publish_is_a_span_whose_context_the_event_keeps(spans: InMemorySpanExporter) -> None:
    event = UserCreatedFactory()

    [publish] = spans.get_finished_spans()
    assert (publish.name, publish.kind) == ("publish user.created", SpanKind.PRODUCER)
    assert publish.attributes["messaging.message.id"] == str(event.event_id)
    traceparent = Event.objects.get(pk=event.event_id).trace_context["traceparent"]
    assert traceparent.startswith(f"00-{publish.context.trace_id:032x}-{publish.context.span_id:016x}-")


def test_each_attempt_is_a_process_span_linked_to_the_publish(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, crm, settings
) -> None:
    # given: a signup whose CRM sync fails once for now, its retry due at once
    settings.EVENTS_RETRY_FIRST = 0
    event = UserCreatedFactory()
    calls: list[object] = []

    def sync_once_failing(*, event: object) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise CRMTransientError("CRM answered HTTP 503", status=503)

    monkeypatch.setattr("crm.tasks.crm_contact_sync", sync_once_failing)

    # when: the audit (atomic) and the CRM (one by one, retried) run
    run_due(AUDIT)
    run_due(CRM)
    run_due(CRM)

    # then: a span per attempt, each linked to the publish, with its number and outcome
    [publish] = [span for span in spans.get_finished_spans() if span.kind == SpanKind.PRODUCER]
    processed = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    assert [
        (span.name, span.attributes["relay.delivery.attempt"], span.attributes["relay.delivery.outcome"])
        for span in processed
    ] == [(f"process {AUDIT}", 1, "done"), (f"process {CRM}", 1, "retry"), (f"process {CRM}", 2, "done")]
    published = (publish.context.trace_id, publish.context.span_id)
    assert all(
        [(link.context.trace_id, link.context.span_id) for link in span.links] == [published] for span in processed
    )
    assert all(span.attributes["messaging.message.id"] == str(event.event_id) for span in processed)
    assert [span.status.status_code for span in processed] == [StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET]
