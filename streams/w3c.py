"""W3C trace context: the traceparent that names a span, and the context a traceparent names."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent(span: trace.Span) -> str:
    """What a message carries to be continued in `span`'s trace, as `span`'s child."""
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def parent(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context `traceparent` names; None (a new trace starts) unless it is a valid one."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None
