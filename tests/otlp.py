"""A real OTLP trace receiver for tests, on both protocols: OTLP/HTTP (protobuf, POST /v1/traces)
and OTLP/gRPC, decoding what exporters send with opentelemetry-proto's own classes."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it; ids in hex, as a traceparent writes them."""

    service: str
    instance: str  # service.instance.id: which process
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace id, span id)
    status: int  # 0 unset, 1 ok, 2 error

    @property
    def traceparent_prefix(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-"


class Receiver:
    """Collects every span exported to it, by any process, on either protocol."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0

    def take(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        self.requests += 1
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                self.spans.extend(_span(resource, s) for s in scope.spans)

    async def until(self, found: Callable[[list[ReceivedSpan]], Any], timeout: float = 20) -> Any:
        """`found(spans)` once it is truthy; TimeoutError with what arrived otherwise."""
        deadline = time.monotonic() + timeout
        while not (result := found(self.spans)):
            if time.monotonic() > deadline:
                names = sorted({(s.service, s.name) for s in self.spans})
                raise TimeoutError(f"spans not received; have {len(self.spans)}: {names}")
            await asyncio.sleep(0.1)
        return result

    def by_id(self) -> dict[str, ReceivedSpan]:
        return {s.span_id: s for s in self.spans}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def http_receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """An OTLP/HTTP receiver; yields it and its endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)."""
    receiver = Receiver()

    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        receiver.take(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    app = web.Application(client_max_size=32 * 1024 * 1024)  # an export holds 512 spans
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def grpc_receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """An OTLP/gRPC receiver (the collector's TraceService); yields it and its endpoint."""
    receiver = Receiver()

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        async def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            receiver.take(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        await server.stop(None)


def _span(resource: dict[str, Any], span: Any) -> ReceivedSpan:
    return ReceivedSpan(
        service=resource["service.name"],
        instance=resource.get("service.instance.id", ""),
        name=span.name,
        kind=KINDS.get(span.kind, str(span.kind)),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        attributes=_attributes(span.attributes),
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        status=span.status.code,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        found[pair.key] = getattr(value, kind) if kind else None
    return found


def tree(spans: list[ReceivedSpan], root: ReceivedSpan) -> str:
    """The span tree under `root`, one span a line, indented by depth (for reports)."""
    lines: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.service}: {span.name} [{span.kind}] {span.span_id}")
        for child in sorted(
            (s for s in spans if s.parent_id == span.span_id), key=lambda s: s.name
        ):
            walk(child, depth + 1)

    walk(root, 0)
    return "\n".join(lines)
