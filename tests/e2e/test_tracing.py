"""A signup's trace across processes: the web's publish span, the worker's attempt spans linked to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devtools.fakes import FakeCRM, SMTPSink
from devtools.processes import celery_worker, wait_until
from events.api import consumers_of
from tests.conftest import worker_env
from users.signals import user_created

pytestmark = pytest.mark.e2e


class OTLPReceiver:
    """An OTLP/HTTP endpoint (protobuf, POST /v1/traces) keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, str], object]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend((resource, span) for span in scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> OTLPReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


def test_a_signups_attempts_in_the_worker_are_spans_linked_to_its_publish_in_the_web(
    transactional_db: None,
    spans: InMemorySpanExporter,
    otlp: OTLPReceiver,
    smtp_server: SMTPSink,
    crm_server: FakeCRM,
    tmp_path: Path,
    password: str,
) -> None:
    # given: a real worker exporting its spans over OTLP/HTTP, this process (the web) to memory
    env = worker_env(
        smtp_server,
        crm_server,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url,
        OTEL_SERVICE_NAME="relay-worker",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    worker = celery_worker(env=env, log_path=tmp_path / "worker.log").start()
    try:
        # when: a signup through the form
        client = Client()
        data = {"email": "ann@example.com", "name": "Ann Lee", "password1": password, "password2": password}
        assert client.post(reverse("users:signup"), data).status_code == 302

        # then: one process span per consumer from the worker, each linked to the web's publish span
        consumers = sorted(declared.name for declared in consumers_of(user_created))

        def processed() -> list[object]:
            return [span for resource, span in otlp.spans if resource.get("service.name") == "relay-worker"]

        wait_until(
            lambda: len({span.name for span in processed()}) >= len(consumers),
            timeout=60,
            describe=lambda: f"{[span.name for span in processed()]}\n{worker.log()[-4000:]}",
        )
    finally:
        worker.stop()
    [publish] = [span for span in spans.get_finished_spans() if span.kind == SpanKind.PRODUCER]
    published = (publish.context.trace_id.to_bytes(16, "big"), publish.context.span_id.to_bytes(8, "big"))
    attempts = [span for span in processed() if span.name.startswith("process ")]
    assert sorted(span.name.removeprefix("process ") for span in attempts) == consumers
    for span in attempts:
        assert [(link.trace_id, link.span_id) for link in span.links] == [published], span.name
        attributes = {item.key: item.value for item in span.attributes}
        assert attributes["relay.delivery.outcome"].string_value == "done"
        assert attributes["relay.delivery.attempt"].int_value == 1
