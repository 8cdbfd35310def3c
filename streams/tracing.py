"""Tracing's set-up, shared by the worker and the API: the OpenTelemetry SDK configured by the
standard OTEL_* variables alone. Off, the SDK is never imported (ADR 9)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from streams import __version__
from streams.settings import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Either of these turns tracing on (contract §14); OTEL_TRACES_EXPORTER=none turns it off again.
_SWITCHES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
# The names OTEL_TRACES_EXPORTER takes for OTLP, by protocol, as the SDK's auto-configuration
# reads them; `otlp` follows OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, grpc unless set (the
# Python SDK's default).
_OTLP = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_EXPORTERS = "opentelemetry_traces_exporter"  # the SDK's entry-point group of span exporters
log = logging.getLogger("tally.tracing")


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _SWITCHES)


SERVICE = "tally"  # OTEL_SERVICE_NAME's default for every Tally process (contract §14)


def provider(process: str) -> TracerProvider:
    """A tracer provider configured by OTEL_*: exporters, sampler, limits, resource; each
    exporter behind a BatchSpanProcessor (OTEL_BSP_*). The service is `tally` (contract §14)
    unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name one; `tally.process` says which
    of Tally's processes (`worker`, `api`) made a span. ConfigError (exit 2) for an exporter or
    protocol the SDK does not know."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.version": __version__})
    found = resource.attributes
    defaults: dict[str, str] = {"tally.process": process}
    if str(found.get("service.name", "")).startswith("unknown_service"):
        defaults["service.name"] = SERVICE
    if "service.instance.id" not in found:  # which of a service's processes: each its own
        defaults["service.instance.id"] = str(uuid.uuid4())
    resource = resource.merge(Resource(defaults))
    # shut down by close(), bounded, rather than by an atexit hook that may wait 30 s
    traces = TracerProvider(resource=resource, shutdown_on_exit=False)
    chosen = exporters()
    for exporter in chosen.values():
        traces.add_span_processor(BatchSpanProcessor(exporter))
    service = str(resource.attributes["service.name"])
    log.info("tracing on", extra={"service": service, "exporters": list(chosen)})
    return traces


def exporters(environ: Mapping[str, str] = os.environ) -> dict[str, SpanExporter]:
    """The span exporters OTEL_TRACES_EXPORTER names (default `otlp`); each reads its own
    OTEL_EXPORTER_OTLP_* variables (endpoint, headers, certificates, timeout, compression)."""
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    found: dict[str, SpanExporter] = {}
    for name in (n.strip() for n in names.split(",")):
        if name in ("", "none"):
            continue
        entry = _entry_point(name, environ)
        loaded = list(entry_points(group=_EXPORTERS, name=entry))
        if not loaded:
            raise ConfigError(f"invalid configuration: OTEL_TRACES_EXPORTER: unknown {name!r}")
        try:
            found[entry] = loaded[0].load()()
        except Exception as exc:  # e.g. an OTEL_EXPORTER_OTLP_* value the exporter refuses
            detail = f"{entry}: {type(exc).__name__}: {exc}"
            raise ConfigError(f"invalid configuration: OTEL_TRACES_EXPORTER: {detail}") from None
    return found


def _entry_point(name: str, environ: Mapping[str, str]) -> str:
    if name != "otlp":
        return name
    variable = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    if not environ.get(variable, "").strip():
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = environ.get(variable, "").strip() or "grpc"
    if protocol not in _OTLP:
        raise ConfigError(
            f"invalid configuration: {variable}: {protocol!r} is not grpc or http/protobuf"
        )
    return _OTLP[protocol]


def close(traces: TracerProvider, timeout: float) -> None:
    """Export what is left and stop, waiting at most `timeout` seconds: an unreachable
    collector must not hold a stopping process past its shutdown deadline."""
    closing = threading.Thread(target=traces.shutdown, name="tracing-shutdown", daemon=True)
    closing.start()
    closing.join(timeout)
