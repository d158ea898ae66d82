"""OpenTelemetry tracing, on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.

Every process the project starts (web, worker, beat, manage.py) imports config.celery_app, which
calls configure(): spans go to the OTLP/HTTP endpoint in batches, named by OTEL_SERVICE_NAME and
the SDK's other OTEL_* variables. Unset, the API's no-op tracer costs nothing and the SDK is never
imported (about 170 ms a process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Return whether an OTLP endpoint is configured (and the SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(environ.get(name) for name in ENDPOINTS)


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Install a tracer provider exporting over OTLP/HTTP when one is configured; return whether it did."""
    if not enabled(environ):
        return False
    # Imported only when tracing is on: the SDK and the exporter are heavy for every process.
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "relay")}))
    # The batch processor's thread is started again in each forked pool process (the SDK's fork hook).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
