"""Tracing end to end (contract §14, ADR 9): two workers and `tally api` export over OTLP/HTTP to a
real receiver (tests/otlp.py). A transfer across partitions is one trace: the producer's span,
the source worker's `process` span, the destination worker's credit; the outcome names the
span that decided it. A command posted to the API continues the caller's trace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from tests.e2e.harness import Outcomes, Producer, Tally, on_partition, token, two_workers
from tests.otlp import ReceivedSpan, Receiver, http_receiver, tree

pytestmark = pytest.mark.e2e

PARTITIONS = 2


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    async with http_receiver() as found:
        yield found


@pytest.fixture(scope="module")
async def tally(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, str]
) -> AsyncIterator[Tally]:
    """Two workers (one partition each) and `tally api`, all exporting to the receiver."""
    logs = tmp_path_factory.mktemp("tracing")
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver[1],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    async with two_workers(logs, PARTITIONS, **otel) as deployment:
        deployment.start_api(logs / "api.log", **otel)
        try:
            await deployment.wait_api_ready()
            yield deployment
        finally:
            assert deployment.stop_api() == 0, (logs / "api.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def caller(receiver: tuple[Receiver, str]) -> Iterator[TracerProvider]:
    """The test's own tracer: an upstream producer whose spans reach the same receiver."""
    exporter = OTLPSpanExporter(endpoint=f"{receiver[1]}/v1/traces")
    provider = TracerProvider(resource=Resource({"service.name": "e2e-producer"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    yield provider
    provider.shutdown()  # its spans were flushed by the tests


def traceparent_of(span: Any) -> str:
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def span_named_by(spans: list[ReceivedSpan], traceparent: str) -> ReceivedSpan | None:
    _, trace_id, span_id, _ = traceparent.split("-")
    return next((s for s in spans if (s.trace_id, s.span_id) == (trace_id, span_id)), None)


def chain(spans: list[ReceivedSpan], last: ReceivedSpan, depth: int) -> list[ReceivedSpan] | None:
    """`last` and its ancestors, root first, once `depth` of them have arrived."""
    found = [last]
    by_id = {s.span_id: s for s in spans}
    while found[0].parent_id and len(found) < depth:
        up = by_id.get(found[0].parent_id)
        if up is None:
            return None
        found.insert(0, up)
    return found if len(found) == depth else None


async def send_and_wait(producer: Producer, outcomes: Outcomes, ctype: str, data: Any) -> Any:
    auth = token("psp", ["payments"]) if ctype == "ledger.deposit.v1" else None
    cid = await producer.send(ctype, data, auth=auth)
    return (await outcomes.of(cid))[cid]


async def test_a_transfer_across_partitions_is_one_trace_from_the_producer_to_the_credit(
    tally: Tally,
    producer: Producer,
    outcomes: Outcomes,
    receiver: tuple[Receiver, str],
    caller: TracerProvider,
    new_id: Callable[[str], str],
) -> None:
    spans = receiver[0]
    source = on_partition(new_id, "src", 0, PARTITIONS)
    target = on_partition(new_id, "dst", 1, PARTITIONS)
    for account in (source, target):
        data = {"account_id": account, "owner_id": "owner", "currency": "EUR"}
        await send_and_wait(producer, outcomes, "ledger.account.open.v1", data)
    data = {"account_id": source, "amount": 1_000, "currency": "EUR", "external_ref": "in"}
    await send_and_wait(producer, outcomes, "ledger.deposit.v1", data)

    topic = tally.topics["commands"]
    span = caller.get_tracer("e2e").start_span(f"send {topic}", kind=SpanKind.PRODUCER)
    sent = traceparent_of(span)
    transfer = {"transfer_id": new_id("t"), "from_account": source, "to_account": target}
    cid = await producer.send(
        "ledger.transfer.v1",
        transfer | {"amount": 300, "currency": "EUR"},
        extra_headers=[("ce_traceparent", sent.encode())],
    )
    span.end()
    await asyncio.to_thread(caller.force_flush)
    completed = (await outcomes.of(cid))[cid]
    assert completed.type == "ledger.transfer.completed.v1", completed.data

    # The outcome names the span that decided it: the credit, on the destination's worker.
    named = completed.headers["ce_traceparent"]
    credit = await spans.until(lambda s: span_named_by(s, named))
    producer_span, debit, credit = await spans.until(lambda s: chain(s, credit, 3))
    print("\nthe receiver's span tree of the transfer:\n" + tree(spans.spans, producer_span))

    assert {s.trace_id for s in (producer_span, debit, credit)} == {sent.split("-")[1]}
    assert (producer_span.service, producer_span.name) == ("e2e-producer", f"send {topic}")
    assert (debit.service, debit.name, debit.kind) == ("tally", f"process {topic}", "CONSUMER")
    assert debit.attributes["messaging.message.id"] == cid
    assert debit.attributes["messaging.destination.partition.id"] == "0"
    transfers = tally.topics["transfers"]
    assert (credit.service, credit.name, credit.kind) == (
        "tally",
        f"process {transfers}",
        "CONSUMER",
    )
    assert credit.attributes["messaging.message.id"] == f"{cid}:credit"
    assert credit.attributes["messaging.destination.partition.id"] == "1"
    assert credit.attributes["tally.outcome.type"] == "ledger.transfer.completed.v1"
    assert debit.instance != credit.instance  # two workers, two processes
    # each links to its batch's span, a trace of its own
    batches = {s.span_id: s for s in spans.spans if s.name == "process"}
    for message in (debit, credit):
        [(_, batch)] = message.links
        assert batch in batches


async def test_a_command_posted_to_the_api_continues_the_callers_trace_into_the_worker(
    tally: Tally, receiver: tuple[Receiver, str], new_id: Callable[[str], str]
) -> None:
    spans = receiver[0]
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    account = new_id("api")
    headers = {
        "traceparent": f"00-{trace_id}-{caller_span}-01",
        "authorization": f"Bearer {token()}",
        "prefer": "wait=20",
        "ce-specversion": "1.0",
        "ce-id": new_id("open"),
        "ce-source": "e2e-api",
        "ce-type": "ledger.account.open.v1",
    }
    data = {"account_id": account, "owner_id": "owner", "currency": "EUR"}
    async with httpx.AsyncClient(base_url=tally.api_url, timeout=60) as http:
        reply = await http.post("/v1/commands", json=data, headers=headers)
    assert reply.status_code == 200, reply.text
    named = reply.json()["outcome"]["traceparent"]
    processed = await spans.until(lambda s: span_named_by(s, named))
    server, sent, processed = await spans.until(lambda s: chain(s, processed, 3))
    print("\nthe receiver's span tree of the POST:\n" + tree(spans.spans, server))

    assert {s.trace_id for s in (server, sent, processed)} == {trace_id}
    assert server.parent_id == caller_span
    assert (server.service, server.name, server.kind) == (
        "tally",
        "POST /v1/commands",
        "SERVER",
    )
    assert server.attributes["http.response.status_code"] == 200
    topic = tally.topics["commands"]
    assert (sent.service, sent.name, sent.kind) == ("tally", f"send {topic}", "PRODUCER")
    assert (processed.service, processed.name) == ("tally", f"process {topic}")
    assert processed.attributes["tally.outcome.type"] == "ledger.account.opened.v1"
