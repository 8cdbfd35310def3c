"""The CloudEvents Kafka binding: binary and structured input, binary output, dead-letter headers."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from cloudevents.v1.http import CloudEvent as SdkEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary, to_binary

from models.events import Deposited
from streams.codec import CloudEvent, Undecodable, decode, encode
from streams.outcomes import outcome_id, stored_event
from streams.publish import dead_letter

pytestmark = pytest.mark.unit

BINARY = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"c-1"),
    ("ce_source", b"app"),
    ("ce_type", b"ledger.deposit.v1"),
    ("ce_authtoken", b"tok"),
    ("content-type", b"application/json"),
]


def test_binary_mode_reads_attributes_from_ce_headers_and_data_from_the_value() -> None:
    event = decode(b'{"amount": 1}', BINARY, 1000)
    assert isinstance(event, CloudEvent)
    assert event.id == "c-1"
    assert event.type == "ledger.deposit.v1"
    assert event.attributes["authtoken"] == "tok"
    assert event.data == {"amount": 1}


def test_structured_mode_reads_one_json_cloudevent() -> None:
    value = orjson.dumps(
        {
            "specversion": "1.0",
            "id": "c-2",
            "source": "s",
            "type": "t",
            "authtoken": "tok",
            "data": {"x": 1},
        }
    )
    event = decode(value, [("content-type", b"application/cloudevents+json")], 1000)
    assert isinstance(event, CloudEvent)
    assert (event.id, event.attributes["authtoken"], event.data) == ("c-2", "tok", {"x": 1})


def test_an_event_built_by_the_cloudevents_sdk_kafka_binding_is_read() -> None:
    attributes = {
        "id": "sdk-1",
        "source": "sdk",
        "type": "ledger.deposit.v1",
        "datacontenttype": "application/json",
    }
    sdk = SdkEvent(attributes, {"amount": 3})
    message = to_binary(sdk)
    event = decode(message.value, list(message.headers.items()), 1000)
    assert isinstance(event, CloudEvent)
    assert event.id == "sdk-1"
    assert event.data == {"amount": 3}


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"x" * 1001, [], "too_large"),
        (None, [], "undecodable"),
        (b"", BINARY, "undecodable"),
        (b"{not json", [], "undecodable"),
        (
            b"{}",
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s")],
            "invalid_envelope",
        ),
        (b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}', [], "invalid_envelope"),
        (b'{"specversion": "1.0", "id": 7, "source": "s", "type": "t"}', [], "invalid_envelope"),
        (
            orjson.dumps({"specversion": "1.0", "id": "i" * 129, "source": "s", "type": "t"}),
            [],
            "invalid_envelope",
        ),
        (b"[1]", [], "invalid_envelope"),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"\xff")], "invalid_envelope"),
        (b"{}", [*BINARY[:-1], ("content-type", b"text/plain")], "undecodable"),
    ],
)
def test_unreadable_records_say_why(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    result = decode(value, headers, 1000)
    assert isinstance(result, Undecodable)
    assert result.reason == reason


def test_outcomes_are_binary_cloudevents_the_sdk_can_read() -> None:
    data = Deposited(account_id="a", amount=5, currency="EUR", external_ref="r", balance=5)
    stored = stored_event(
        data,
        data.TYPE,
        subject="a",
        command_id="c-9",
        causation_id="c-9",
        source="tally",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        traceparent=None,
    )
    value, headers = encode(stored)
    sdk = from_binary(KafkaMessage(dict(headers), b"a", value))
    assert sdk["id"] == outcome_id("c-9")
    assert sdk["type"] == "ledger.deposited.v1"
    assert sdk["correlationid"] == "c-9"
    assert sdk["subject"] == "a"
    assert sdk["time"] == "2026-01-02T00:00:00Z"
    assert sdk.data == data.model_dump()


def test_outcome_ids_are_deterministic_per_command() -> None:
    assert outcome_id("c-1") == outcome_id("c-1") != outcome_id("c-2")


def test_dead_letters_keep_key_value_and_headers_and_add_why_and_where() -> None:
    record = SimpleNamespace(
        topic="ledger.commands",
        partition=2,
        offset=41,
        key=b"k",
        value=b"\x00",
        headers=[("h", b"v")],
    )
    message = dead_letter("ledger.dlq", record, "undecodable", "value is not JSON")
    headers = dict(message.headers)
    assert (message.topic, message.key, message.value) == ("ledger.dlq", b"k", b"\x00")
    assert headers["h"] == b"v"
    assert headers["tally_error_reason"] == b"undecodable"
    assert headers["tally_original_partition"] == b"2"
    assert headers["tally_original_offset"] == b"41"
    assert {"tally_error_detail", "tally_original_topic", "tally_failed_at"} <= set(headers)
