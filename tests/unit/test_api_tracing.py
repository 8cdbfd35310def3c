"""`tally api`'s spans (ADR 9): a SERVER span per /v1 request in the caller's trace, and the
command carrying the context of the PRODUCER span that sent it. No network: an ASGI client."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.datastructures import Headers

from streams.api import problems
from streams.api.problems import ProblemError
from streams.api.submit import TRACE_SLOT, Submission, submission
from streams.api.tracing import Traced, Untraced
from streams.codec import Limits

pytestmark = pytest.mark.unit

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "c-1",
    "ce-source": "app",
    "ce-type": "ledger.deposit.v1",
    "content-type": "application/json",
}
DATA = orjson.dumps({"account_id": "acc", "amount": 5, "currency": "EUR", "external_ref": "r"})
LIMITS = Limits(max_bytes=65536, max_headers=64)


def traced() -> tuple[Traced, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traced(provider), exporter


def names(span: ReadableSpan) -> str:
    c = span.context
    assert c is not None
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def app_sending(tracing: Traced | Untraced, sent: list[Submission]) -> FastAPI:
    """An app whose route sends a command the way POST /v1/commands does."""
    app = FastAPI()
    problems.install(app)

    @app.post("/v1/things/{thing}")
    async def send(thing: str, request: Request) -> dict[str, str]:
        body = await request.body()
        command = submission(request.headers, body, "a.b.c", LIMITS, trace_slot=tracing.on)
        with tracing.sending("ledger.commands", command) as ready:
            if thing == "broken":
                raise ProblemError(503, "Kafka did not take the command")
            sent.append(ready)
        return {"thing": thing}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    tracing.install(app)
    return app


async def post(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.post(path, content=DATA, headers=BINARY | headers)


def spans_by_kind(exporter: InMemorySpanExporter) -> dict[SpanKind, ReadableSpan]:
    return {s.kind: s for s in exporter.get_finished_spans()}


async def test_a_command_posted_carries_the_context_of_the_span_that_sent_it() -> None:
    tracing, exporter = traced()
    sent: list[Submission] = []
    reply = await post(app_sending(tracing, sent), "/v1/things/x", traceparent=CALLER)
    assert reply.status_code == 200
    spans = spans_by_kind(exporter)
    server, producer = spans[SpanKind.SERVER], spans[SpanKind.PRODUCER]
    assert server.name == "POST /v1/things/{thing}"
    assert names(server).split("-")[1] == CALLER.split("-")[1]  # the caller's trace
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER.split("-")[2]
    attributes: dict[str, Any] = dict(server.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/v1/things/{thing}"
    assert attributes["http.response.status_code"] == 200
    assert producer.name == "send ledger.commands"
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    assert dict(producer.attributes or {})["messaging.message.id"] == "c-1"
    assert dict(producer.attributes or {})["messaging.kafka.message.key"] == "acc"
    [command] = sent
    assert dict(command.headers)["ce_traceparent"] == names(producer).encode()


async def test_a_request_without_a_traceparent_starts_a_trace() -> None:
    tracing, exporter = traced()
    await post(app_sending(tracing, []), "/v1/things/x")
    assert spans_by_kind(exporter)[SpanKind.SERVER].parent is None


async def test_a_traceparent_the_client_put_in_the_event_is_kept() -> None:
    tracing, exporter = traced()
    sent: list[Submission] = []
    own = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    await post(app_sending(tracing, sent), "/v1/things/x", **{"ce-traceparent": own})
    assert dict(sent[0].headers)["ce_traceparent"] == own.encode()
    assert SpanKind.PRODUCER in spans_by_kind(exporter)  # sent all the same


async def test_a_command_kafka_refused_fails_its_spans() -> None:
    tracing, exporter = traced()
    reply = await post(app_sending(tracing, []), "/v1/things/broken")
    assert reply.status_code == 503
    spans = spans_by_kind(exporter)
    assert spans[SpanKind.SERVER].status.status_code is StatusCode.ERROR
    assert dict(spans[SpanKind.SERVER].attributes or {})["error.type"] == "503"
    assert spans[SpanKind.PRODUCER].status.status_code is StatusCode.ERROR


async def test_probes_are_not_traced() -> None:
    tracing, exporter = traced()
    transport = httpx.ASGITransport(app=app_sending(tracing, []))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/healthz")).status_code == 200
    assert exporter.get_finished_spans() == ()


async def test_tracing_off_sends_the_command_as_before() -> None:
    sent: list[Submission] = []
    await post(app_sending(Untraced(), sent), "/v1/things/x", traceparent=CALLER)
    assert "ce_traceparent" not in dict(sent[0].headers)
    assert sent[0] == submission(Headers(BINARY), DATA, "a.b.c", LIMITS)


def test_the_size_limit_counts_the_traceparent_the_api_will_add() -> None:
    plain = submission(Headers(BINARY), DATA, "a.b.c", LIMITS)
    weight = len(DATA) + len(b"acc") + sum(len(n) + len(v) for n, v in plain.headers)
    exact = Limits(max_bytes=weight, max_headers=64)
    assert submission(Headers(BINARY), DATA, "a.b.c", exact) == plain
    with pytest.raises(ProblemError) as refused:
        submission(Headers(BINARY), DATA, "a.b.c", exact, trace_slot=True)
    assert refused.value.status == 413
    slotted = submission(Headers(BINARY), DATA, "a.b.c", LIMITS, trace_slot=True)
    assert dict(slotted.headers)["ce_traceparent"] == TRACE_SLOT.encode()
    assert len(TRACE_SLOT) == len(CALLER)
