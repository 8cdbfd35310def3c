"""The worker's spans (ADR 9): one per message processed, in that message's trace, and one per
batch for the work the batch does at once, which every message's span links to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from models.documents import Account, TransferLeg
from models.ids import leg_inbox_id
from streams import __version__
from streams.batch import BatchDecider, Loaded
from streams.batch_trace import BatchTrace
from streams.codec import CloudEvent
from streams.decisions import DecisionRecord
from streams.intake import CommandItem, DeadItem, LegItem
from streams.settings import Settings
from streams.tracing import close
from streams.w3c import parent, traceparent

# The batch's stages (streams.pipeline `_stage`) as its spans name them; `publish` sends.
_STAGES = {"accounts": "write accounts", "effects": "write effects", "publish": "send"}
_PROCESS = {"messaging.operation.type": "process", "messaging.operation.name": "process"}
_SEND = {"messaging.operation.type": "send", "messaging.operation.name": "send"}


class Traced:
    """The worker's tracing when OTEL_* turn it on (streams.batch_trace.worker_tracing)."""

    def __init__(self, provider: TracerProvider, settings: Settings) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("tally.worker", __version__)
        self._settings = settings
        self._common = {
            "messaging.system": "kafka",
            "messaging.consumer.group.name": settings.group_id,
        }

    def batch(self, size: int, fetched_at: float) -> BatchTrace:
        return TracedBatch(self._tracer, self._settings, self._common, size, fetched_at)

    def close(self, timeout: float) -> None:
        close(self._provider, timeout)


class TracedBatch:
    """The spans of one batch, ended together once its outcomes are published (or it failed):
    a message's span lasts from the fetch to the publication of what it decided."""

    def __init__(
        self,
        tracer: trace.Tracer,
        settings: Settings,
        common: dict[str, Any],
        size: int,
        fetched_at: float,
    ) -> None:
        self._tracer = tracer
        self._settings = settings
        self._common = common
        self._start = int(fetched_at * 1e9)
        attributes = common | _PROCESS | {"messaging.batch.message_count": size}
        # Its own trace: a batch serves many. Message spans link to it, not the other way,
        # so a batch of any size is linked in full (span links are limited per span).
        self._span = tracer.start_span(
            "process", kind=SpanKind.CONSUMER, start_time=self._start, attributes=attributes
        )
        self._in_batch = trace.set_span_in_context(self._span)
        self._links = [Link(self._span.get_span_context())]
        self._spans: list[Span] = []
        self._ended = False

    def decider(
        self, loaded: Loaded, *, now: datetime, source: str, currencies: frozenset[str]
    ) -> BatchDecider:
        return TracedDecider(loaded, self, now=now, source=source, currencies=currencies)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        sends = name == "publish"
        kind = SpanKind.PRODUCER if sends else SpanKind.INTERNAL
        attributes = (self._common | _SEND) if sends else None
        span = self._tracer.start_span(
            _STAGES.get(name, name), self._in_batch, kind, attributes=attributes
        )
        try:
            yield
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()

    def message(self, record: Any, traceparent: str | None, attributes: dict[str, Any]) -> Span:
        """The span of one message of the batch, in the trace its traceparent names."""
        topic = record.topic
        attributes = self._common | _PROCESS | attributes
        attributes["messaging.destination.name"] = topic
        attributes["messaging.destination.partition.id"] = str(record.partition)
        attributes["messaging.kafka.offset"] = record.offset
        if (key := _text(record.key)) is not None:
            attributes["messaging.kafka.message.key"] = key
        return self._start_span(f"process {topic}", SpanKind.CONSUMER, traceparent, attributes)

    def local_credit(self, leg: TransferLeg) -> Span:
        """The span of a credit decided in the batch of its transfer (local settlement, ADR 5):
        named as the leg's would be, but no message was received."""
        attributes = self._common | _PROCESS | _leg_attributes(leg)
        attributes["messaging.destination.name"] = topic = self._settings.topic_transfers
        attributes["tally.settled_locally"] = True
        return self._start_span(f"process {topic}", SpanKind.INTERNAL, leg.traceparent, attributes)

    def dead(self, items: Sequence[DeadItem]) -> None:
        """Records dead-lettered as they were read: a failed span each, in their trace if
        their headers name one."""
        for item in items:
            span = self.message(item.record, _header_trace(item.record), {})
            dead_letter(span, item.reason)

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:  # a failed flush is ended once, by whichever step saw it first
            return
        self._ended = True
        for span in [*self._spans, self._span]:
            if error is not None:
                _failed(span, error)
            span.end()

    def _start_span(
        self, name: str, kind: SpanKind, traceparent: str | None, attributes: dict[str, Any]
    ) -> Span:
        span = self._tracer.start_span(
            name,
            parent(traceparent),
            kind,
            attributes=attributes,
            links=self._links,
            start_time=self._start,
        )
        self._spans.append(span)
        return span


class TracedDecider(BatchDecider):
    """The BatchDecider, each message decided inside its span: what the decision sends on (the
    outcome, a leg) carries the span's traceparent instead of the message's own."""

    def __init__(
        self,
        loaded: Loaded,
        spans: TracedBatch,
        *,
        now: datetime,
        source: str,
        currencies: frozenset[str],
    ) -> None:
        super().__init__(loaded, now=now, source=source, currencies=currencies)
        self._spans = spans

    def apply(self, item: CommandItem | LegItem) -> None:
        if isinstance(item, LegItem):
            incoming = item.leg.traceparent
            span = self._spans.message(item.record, incoming, _leg_attributes(item.leg))
            within: CommandItem | LegItem = replace(item, leg=_traced(item.leg, span))
        else:
            event = item.event
            incoming = event.attributes.get("traceparent")
            span = self._spans.message(item.record, incoming, _command_attributes(event))
            attributes = event.attributes | {"traceparent": traceparent(span)}
            within = replace(item, event=CloudEvent(attributes, event.data))
        plan = self.plan
        duplicates, dead = len(plan.republish), len(plan.dead)
        super().apply(within)
        if len(plan.republish) > duplicates:
            # its outcome is the first decision's, naming the first span (contract §8.1)
            span.set_attribute("tally.duplicate", True)
        elif len(plan.dead) > dead:
            dead_letter(span, plan.dead[-1].reason)
        else:
            _decided(span, self._decided.get(item.inbox_id))

    def _settle(
        self, source_record: DecisionRecord, leg: TransferLeg, kafka_record: Any, account: Account
    ) -> None:
        span = self._spans.local_credit(leg)
        super()._settle(source_record, _traced(leg, span), kafka_record, account)
        _decided(span, self._decided.get(leg_inbox_id(leg.command_id, leg.leg)))


def _traced(leg: TransferLeg, span: Span) -> TransferLeg:
    return leg.model_copy(update={"traceparent": traceparent(span)})


def _command_attributes(event: CloudEvent) -> dict[str, Any]:
    return {
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "tally.command.id": event.id,
    }


def _leg_attributes(leg: TransferLeg) -> dict[str, Any]:
    return {
        "messaging.message.id": leg.message_id,
        "tally.command.id": leg.command_id,
        "tally.transfer.id": leg.transfer_id,
        "tally.transfer.leg": leg.leg,
    }


def _decided(span: Span, record: DecisionRecord | None) -> None:
    """What a message's decision was, on its span: the outcome's type and a rejection's
    reason (a business answer, not an error: the span's status stays unset)."""
    outcome = None if record is None else record.outcome
    if outcome is None:  # a transfer in flight: its leg carries the trace on
        return
    span.set_attribute("tally.outcome.type", outcome["type"])
    reason = outcome["data"].get("reason")
    if reason is not None:
        span.set_attribute("tally.outcome.reason", reason)


def dead_letter(span: Span, reason: str) -> None:
    span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {reason}"))
    span.set_attribute("error.type", reason)
    span.set_attribute("tally.dead_letter.reason", reason)


def _failed(span: Span, error: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
    span.set_attribute("error.type", type(error).__qualname__)


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _header_trace(record: Any) -> str | None:
    """The traceparent a record's headers carry, read as the codec does (`ce_` first)."""
    found = {
        name.lower(): value
        for name, value in getattr(record, "headers", None) or ()
        if isinstance(name, str) and name.lower() in ("ce_traceparent", "traceparent")
    }
    return _text(found.get("ce_traceparent", found.get("traceparent")))
