"""`tally api`'s spans (ADR 9): a SERVER span per `/v1` request, in the trace of its `traceparent`
header, and a PRODUCER span per command sent, whose context the command carries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams import __version__
from streams.api.submit import Submission
from streams.tracing import close, enabled, provider
from streams.w3c import parent, traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class ApiTracing(Protocol):
    on: bool  # whether commands get a traceparent slot (streams.api.submit)

    def install(self, app: FastAPI) -> None: ...

    def sending(
        self, topic: str, command: Submission
    ) -> contextlib.AbstractContextManager[Submission]: ...

    def close(self, timeout: float) -> None: ...


class Untraced:
    """Tracing off: commands go out as they came, and no request is traced."""

    on = False

    def install(self, app: FastAPI) -> None:
        return None

    def sending(
        self, topic: str, command: Submission
    ) -> contextlib.AbstractContextManager[Submission]:
        return contextlib.nullcontext(command)

    def close(self, timeout: float) -> None:
        return None


class Traced:
    on = True

    def __init__(self, traces: TracerProvider) -> None:
        self._provider = traces
        self._tracer = traces.get_tracer("tally.api", __version__)

    def install(self, app: FastAPI) -> None:
        app.add_middleware(TracedRequests, tracer=self._tracer)

    @contextlib.contextmanager
    def sending(self, topic: str, command: Submission) -> Iterator[Submission]:
        """The span of producing `command`, a child of the request's: the command carries its
        context unless the client gave the event a traceparent of its own (kept, ADR 9)."""
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            "messaging.message.id": command.command_id,
            "tally.command.id": command.command_id,
        }
        if command.key is not None:
            attributes["messaging.kafka.message.key"] = command.key.decode(errors="replace")
        with self._tracer.start_as_current_span(
            f"send {topic}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            yield command.traced(traceparent(span))

    def close(self, timeout: float) -> None:
        close(self._provider, timeout)


def api_tracing() -> ApiTracing:
    """As the OTEL_* variables ask (service name `tally-api`); ConfigError on bad ones."""
    return Traced(provider("api")) if enabled() else Untraced()


class TracedRequests:
    """A SERVER span around each `/v1` request (probes and metrics scrapes are not traced),
    current while the route runs, named by the route once it is known."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self._app = app
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        span = self._tracer.start_span(
            method,
            parent(headers.get("traceparent"), headers.get("tracestate")),
            SpanKind.SERVER,
            attributes=_request_attributes(scope, headers),
        )
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = context.attach(trace.set_span_in_context(span))
        try:
            await self._app(scope, receive, sent)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            context.detach(token)
            _answered(span, scope, method, status)
            span.end()


def _request_attributes(scope: Scope, headers: dict[str, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope["path"],
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if client := scope.get("client"):
        attributes["client.address"] = client[0]
    if agent := headers.get("user-agent"):
        attributes["user_agent.original"] = agent
    return attributes


def _answered(span: trace.Span, scope: Scope, method: str, status: int) -> None:
    route = getattr(scope.get("route"), "path", None)
    if route:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:  # a 4xx is the client's error, not this server's (HTTP conventions)
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
