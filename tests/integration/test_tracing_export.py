"""Spans leave the process over OTLP, configured by OTEL_* alone: both protocols, a real
receiver on each (tests/otlp.py), the service named `tally` unless OTEL_SERVICE_NAME says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from streams import tracing
from tests.otlp import Receiver, grpc_receiver, http_receiver

pytestmark = pytest.mark.integration

RECEIVERS: dict[str, Callable[[], AbstractAsyncContextManager[tuple[Receiver, str]]]] = {
    "grpc": grpc_receiver,
    "http/protobuf": http_receiver,
}


@pytest.fixture(params=sorted(RECEIVERS))
async def receiver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Receiver]:
    """A receiver of the parameter's protocol, and OTEL_* pointing at it."""
    protocol: str = request.param
    async with RECEIVERS[protocol]() as (found, endpoint):
        for name in ("OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        yield found


async def _export_one(name: str) -> None:
    assert tracing.enabled()
    traces = tracing.provider("worker")
    traces.get_tracer("test").start_span(name).end()
    # The exporters block (requests, grpc's sync stub): off the loop, which serves the receiver.
    await asyncio.to_thread(tracing.close, traces, 10.0)


async def test_spans_reach_an_otlp_receiver_over_either_protocol(receiver: Receiver) -> None:
    await _export_one("one span")
    spans = await receiver.until(lambda s: s)
    assert [(s.service, s.name) for s in spans] == [("tally", "one span")]


async def test_otel_service_name_names_the_service(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ledger-eu")
    await _export_one("named")
    spans = await receiver.until(lambda s: s)
    assert spans[0].service == "ledger-eu"
