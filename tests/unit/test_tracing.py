"""The worker's spans on the in-memory pipeline (ADR 9): a span per message in its trace, the
outcome's traceparent naming it, legs carrying the trace on, and nothing at all when off."""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from streams.memory import InMemoryStore
from streams.publish import Message
from streams.settings import Settings
from streams.traced import Traced
from streams.writes import AccountWrite
from tests.integration.kit import (
    SECRET,
    Record,
    Recorder,
    command,
    deposit,
    opens,
    pipeline,
    transfer,
)

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER}-01"
SETTINGS = Settings(jwt_secret=SECRET)


def traced() -> tuple[Traced, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traced(provider, SETTINGS), exporter


def with_trace(record: Record, traceparent: str = TRACEPARENT) -> Record:
    record.headers.append(("ce_traceparent", traceparent.encode()))
    return record


def names(span: ReadableSpan) -> str:
    """The traceparent that names `span`."""
    c = span.context
    assert c is not None
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None
    return f"{span.parent.span_id:016x}"


def processed(exporter: InMemorySpanExporter, command_id: str) -> list[ReadableSpan]:
    """The spans of messages of `command_id` (the command and its legs), in ending order."""
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("tally.command.id") == command_id
    ]


def outcome(publisher: Recorder, command_id: str) -> Message:
    """The outcome of `command_id` (sent once, or more than once byte for byte)."""
    found = [
        m
        for m in publisher.sent
        if m.topic == "ledger.events" and dict(m.headers)["ce_correlationid"] == command_id.encode()
    ]
    assert found and all(m == found[0] for m in found), found
    return found[0]


def trace_of(message: Message) -> str | None:
    value = dict(message.headers).get("ce_traceparent")
    return None if value is None else value.decode()


def as_record(message: Message, offset: int) -> Record:
    """A leg the worker published, as the destination's worker reads it."""
    return Record(message.topic, offset, message.key, message.value, list(message.headers))


def legs(publisher: Recorder) -> list[Message]:
    return [m for m in publisher.sent if m.topic == "ledger.transfers"]


async def test_a_command_is_processed_in_a_span_of_its_traceparents_trace() -> None:
    tracing, exporter = traced()
    publisher = Recorder()
    worker = pipeline(SETTINGS, InMemoryStore(), publisher, tracing=tracing)
    await worker.process([*opens("a"), with_trace(deposit(1))], time.time())
    [span] = processed(exporter, "cmd-1")
    assert span.name == "process ledger.commands" and span.kind is SpanKind.CONSUMER
    assert f"{span.context.trace_id:032x}" == TRACE and parent_of(span) == CALLER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.consumer.group.name": "tally",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "ledger.commands",
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 1,
        "messaging.kafka.message.key": "a",
        "messaging.message.id": "cmd-1",
        "cloudevents.event_type": "ledger.deposit.v1",
        "tally.command.id": "cmd-1",
        "tally.outcome.type": "ledger.deposited.v1",
    }
    # the outcome names the span that decided it: a consumer continues from there
    assert trace_of(outcome(publisher, "cmd-1")) == names(span)


async def test_a_command_without_a_traceparent_starts_a_trace() -> None:
    tracing, exporter = traced()
    publisher = Recorder()
    worker = pipeline(SETTINGS, InMemoryStore(), publisher, tracing=tracing)
    await worker.process(opens("a"), time.time())
    [span] = processed(exporter, "cmd-0")
    assert span.parent is None
    assert trace_of(outcome(publisher, "cmd-0")) == names(span)


async def test_an_invalid_traceparent_starts_a_trace_too() -> None:
    tracing, exporter = traced()
    worker = pipeline(SETTINGS, InMemoryStore(), Recorder(), tracing=tracing)
    await worker.process([with_trace(opens("a")[0], "00-not-a-trace-01")], time.time())
    [span] = processed(exporter, "cmd-0")
    assert span.parent is None


async def test_a_rejection_is_an_answer_not_an_error() -> None:
    tracing, exporter = traced()
    worker = pipeline(SETTINGS, InMemoryStore(), Recorder(), tracing=tracing)
    await worker.process([deposit(1)], time.time())  # no such account
    [span] = processed(exporter, "cmd-1")
    assert span.attributes is not None
    assert span.attributes["tally.outcome.type"] == "ledger.command.rejected.v1"
    assert span.attributes["tally.outcome.reason"] == "account_not_found"
    assert span.status.status_code is StatusCode.UNSET


async def test_a_transfers_legs_stay_in_its_trace_across_workers() -> None:
    store = InMemoryStore()
    (tracing_a, exporter_a), (tracing_b, exporter_b) = traced(), traced()
    source, destination = Recorder(), Recorder()
    worker_a = pipeline(SETTINGS, store, source, tracing=tracing_a)
    worker_b = pipeline(SETTINGS, store, destination, tracing=tracing_b)
    await worker_a.process([*opens("a", "b"), deposit(2), with_trace(transfer(3))], time.time())
    [debit] = processed(exporter_a, "cmd-3")
    [credit_leg] = legs(source)
    assert orjson.loads(credit_leg.value or b"")["traceparent"] == names(debit)

    await worker_b.process([as_record(credit_leg, 0)], time.time())
    [credit] = processed(exporter_b, "cmd-3")
    assert credit.name == "process ledger.transfers" and credit.kind is SpanKind.CONSUMER
    assert credit.context.trace_id == debit.context.trace_id
    assert parent_of(credit) == f"{debit.context.span_id:016x}"
    assert credit.attributes is not None
    assert credit.attributes["messaging.message.id"] == "cmd-3:credit"
    assert credit.attributes["tally.transfer.leg"] == "credit"
    assert trace_of(outcome(destination, "cmd-3")) == names(credit)


async def test_a_refund_is_processed_in_a_child_of_the_refused_credits_span() -> None:
    store = InMemoryStore()
    (tracing_a, exporter_a), (tracing_b, exporter_b) = traced(), traced()
    source, destination = Recorder(), Recorder()
    worker_a = pipeline(SETTINGS, store, source, tracing=tracing_a)
    worker_b = pipeline(SETTINGS, store, destination, tracing=tracing_b)
    to_nobody = command(
        3,
        "ledger.transfer.v1",
        {
            "transfer_id": "t",
            "from_account": "a",
            "to_account": "z",
            "amount": 5,
            "currency": "EUR",
        },
    )
    await worker_a.process([*opens("a"), deposit(1), with_trace(to_nobody)], time.time())
    await worker_b.process([as_record(legs(source)[0], 0)], time.time())
    [credit] = processed(exporter_b, "cmd-3")
    [refund_leg] = legs(destination)
    assert orjson.loads(refund_leg.value or b"")["traceparent"] == names(credit)

    await worker_a.process([as_record(refund_leg, 1)], time.time())
    _, refund = processed(exporter_a, "cmd-3")
    assert parent_of(refund) == f"{credit.context.span_id:016x}"
    assert refund.context.trace_id == int(TRACE, 16)
    assert refund.attributes is not None and refund.attributes["tally.transfer.leg"] == "refund"
    assert trace_of(outcome(source, "cmd-3")) == names(refund)


async def test_a_credit_settled_in_the_transfers_batch_is_a_child_of_its_span() -> None:
    tracing, exporter = traced()
    publisher = Recorder()
    worker = pipeline(SETTINGS, InMemoryStore(), publisher, local=True, tracing=tracing)
    await worker.process([*opens("a", "b"), deposit(2), with_trace(transfer(3))], time.time())
    spans = {s.name: s for s in processed(exporter, "cmd-3")}
    debit, credit = spans["process ledger.commands"], spans["process ledger.transfers"]
    assert credit.name == "process ledger.transfers" and credit.kind is SpanKind.INTERNAL
    assert parent_of(credit) == f"{debit.context.span_id:016x}"
    assert credit.attributes is not None and credit.attributes["tally.settled_locally"] is True
    assert legs(publisher) == []
    assert trace_of(outcome(publisher, "cmd-3")) == names(credit)


async def test_a_republished_outcome_keeps_the_first_traceparent() -> None:
    tracing, exporter = traced()
    publisher = Recorder()
    worker = pipeline(SETTINGS, InMemoryStore(), publisher, tracing=tracing)
    await worker.process([*opens("a"), with_trace(deposit(1))], time.time())
    first = outcome(publisher, "cmd-1")
    publisher.sent.clear()
    again = f"00-{'1' * 32}-{'2' * 16}-01"  # a redelivery, or a resend in another trace
    await worker.process([with_trace(deposit(1), again)], time.time())
    assert outcome(publisher, "cmd-1") == first  # same bytes: contract §8.1
    decided, duplicate = processed(exporter, "cmd-1")
    assert trace_of(first) == names(decided)
    assert duplicate.attributes is not None and duplicate.attributes["tally.duplicate"] is True
    assert f"{duplicate.context.trace_id:032x}" == "1" * 32


class CrashingStore(InMemoryStore):
    """Dies once right after an account write, when armed: outboxes written, nothing else."""

    armed = False

    async def write_accounts(self, writes: Sequence[AccountWrite]) -> None:
        await super().write_accounts(writes)
        if self.armed:
            self.armed = False
            raise RuntimeError("crash")


async def test_a_batch_that_failed_after_its_commit_point_keeps_its_spans_named() -> None:
    tracing, exporter = traced()
    store, publisher = CrashingStore(), Recorder()
    worker = pipeline(SETTINGS, store, publisher, tracing=tracing)
    await worker.process(opens("a"), time.time())
    store.armed = True
    with pytest.raises(RuntimeError):
        await worker.process([with_trace(deposit(1))], time.time())
    [failed] = processed(exporter, "cmd-1")  # exported, though the batch failed
    assert failed.status.status_code is StatusCode.ERROR
    await worker.process([with_trace(deposit(1))], time.time())  # the redelivery
    # The outcome was stored with the first decision, in the outbox: it names the first span.
    assert trace_of(outcome(publisher, "cmd-1")) == names(failed)


async def test_a_batch_has_its_own_span_with_its_stages_and_every_message_links_to_it() -> None:
    tracing, exporter = traced()
    worker = pipeline(SETTINGS, InMemoryStore(), Recorder(), tracing=tracing)
    await worker.process([*opens("a"), with_trace(deposit(1))], time.time())
    spans = exporter.get_finished_spans()
    [batch] = [s for s in spans if s.name == "process"]
    assert batch.parent is None and batch.kind is SpanKind.CONSUMER
    assert batch.attributes is not None and batch.attributes["messaging.batch.message_count"] == 2
    stages = {
        s.name: s.kind
        for s in spans
        if s.parent is not None and s.parent.span_id == batch.context.span_id
    }
    assert stages == {
        "decode": SpanKind.INTERNAL,
        "load": SpanKind.INTERNAL,
        "decide": SpanKind.INTERNAL,
        "write accounts": SpanKind.INTERNAL,
        "write effects": SpanKind.INTERNAL,
        "send": SpanKind.PRODUCER,
    }
    for span in processed(exporter, "cmd-0") + processed(exporter, "cmd-1"):
        assert [link.context.span_id for link in span.links] == [batch.context.span_id]


async def test_a_dead_letter_is_a_failed_span_in_the_trace_its_record_names() -> None:
    tracing, exporter = traced()
    worker = pipeline(SETTINGS, InMemoryStore(), Recorder(), tracing=tracing)
    garbage = Record(
        "ledger.commands", 7, b"k", b"not json", [("traceparent", TRACEPARENT.encode())]
    )
    await worker.process([garbage], time.time())
    [span] = [s for s in exporter.get_finished_spans() if s.name == "process ledger.commands"]
    assert span.status.status_code is StatusCode.ERROR and parent_of(span) == CALLER
    assert span.attributes is not None and span.attributes["error.type"] == "undecodable"


async def test_tracing_off_sends_the_same_outcome_as_ever() -> None:
    publisher = Recorder()
    worker = pipeline(SETTINGS, InMemoryStore(), publisher)  # tracing off: the default
    await worker.process([*opens("a"), with_trace(deposit(1))], time.time())
    headers = outcome(publisher, "cmd-1").headers
    assert [name for name, _ in headers] == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
        "ce_subject",
        "ce_correlationid",
        "ce_causationid",
        "ce_traceparent",
    ]
    assert trace_of(outcome(publisher, "cmd-1")) == TRACEPARENT  # the command's own
    assert trace_of(outcome(publisher, "cmd-0")) is None  # it had none
