"""Hostile input: any bytes in key, value and headers end in exactly one place (contract §7).

The whole intake runs here without I/O: the Decoder (envelope, token keys, admission) and
the BatchDecider over an empty ledger. Hypothesis generates raw records; every record must
come out as exactly one dead letter, one decision (an outcome or an applied leg), or one
republished duplicate, and nothing may raise. `make fuzz` runs many more examples."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.auth import TokenKeys
from streams.batch import BatchDecider, Loaded
from streams.codec import Limits, decode
from streams.intake import CommandItem, DeadItem, Decoder, LegItem
from streams.legs import sign_leg
from streams.settings import Settings

pytestmark = pytest.mark.unit

SECRET = "fuzz-secret-that-is-long-enough-for-hs256"
EXAMPLES = int(os.environ.get("TALLY_FUZZ_EXAMPLES", "2000"))
SETTINGS = Settings(jwt_secret=SECRET, topic_transfers="legs", topic_commands="commands")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TYPES = [
    "ledger.account.open.v1",
    "ledger.deposit.v1",
    "ledger.withdrawal.v1",
    "ledger.transfer.v1",
    "ledger.account.freeze.v1",
    "ledger.account.close.v1",
    "ledger.account.limits.v1",
    "tally.transfer.leg.v1",
]
FIELDS = [
    "account_id",
    "owner_id",
    "currency",
    "amount",
    "external_ref",
    "transfer_id",
    "from_account",
    "to_account",
    "overdraft_limit",
    "daily_outflow_limit",
    "memo",
    "reason",
    "leg",
    "command_id",
]


@dataclass
class Record:
    """What the intake reads of an aiokafka ConsumerRecord."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp: int = 1_767_323_045_000
    timestamp_type: int = 0
    partition: int = 0
    offset: int = 0


def _token(exp: int) -> str:
    return jwt.encode({"sub": "ops-1", "roles": ["ops"], "exp": exp}, SECRET)


GOOD_TOKEN = _token(int(NOW.timestamp()) + 3600)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=1, max_value=10**6),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["EUR", "USD", "acc-1", "acc-2", "t-1", "credit", "refund", ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=8,
)
data_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)


def _raw_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits: stdlib writes them
        import json

        return json.dumps(value).encode()


hostile_values = st.one_of(
    st.none(),
    st.binary(max_size=200),
    data_objects.map(_raw_json),
    json_values.map(_raw_json),
    st.integers(min_value=50, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=50, max_value=3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(min_value=20, max_value=400).map(
        lambda n: b'{"amount": ' + b"9" * n + b', "account_id": "a"}'
    ),
    st.sampled_from(
        [b"NaN", b'{"amount": NaN}', b'{"amount": 1e400}', b'"\\ud800"', b"\xef\xbb\xbf{}"]
    ),
)

header_names = st.one_of(
    st.sampled_from(
        [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_authtoken",
            "ce_traceparent",
            "ce_subject",
            "content-type",
            "traceparent",
            "CE_ID",
            "Content-Type",
            "ce_legmac",
        ]
    ),
    st.text(max_size=12),
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.sampled_from(
        [b"1.0", b"0.3", b"application/json", b"text/plain", GOOD_TOKEN.encode(), b"e2e", b"\xff"]
    ),
    st.sampled_from(TYPES).map(str.encode),
)
hostile_headers = st.lists(st.tuples(header_names, header_values), max_size=12)


@st.composite
def binary_commands(draw: st.DrawFn) -> Record:
    """Mostly well-formed binary commands with hostile parts: they reach the deeper checks."""
    headers: list[tuple[str, bytes | None]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", draw(st.text(min_size=1, max_size=8)).encode()),
        ("ce_source", b"fuzz"),
        ("ce_type", draw(st.sampled_from(TYPES)).encode()),
        ("ce_authtoken", draw(st.sampled_from([GOOD_TOKEN, _token(0), "x.y.z"])).encode()),
        ("content-type", b"application/json"),
    ]
    headers += draw(hostile_headers)
    topic = draw(st.sampled_from(["commands", "legs"]))
    value = draw(data_objects.map(_raw_json) | hostile_values)
    if topic == "legs" and value is not None and draw(st.booleans()):
        # signed as a worker would sign it: reaches the check against the stored transfer
        headers.append(("ce_legmac", sign_leg(SETTINGS.leg_key, value)))
    headers = draw(st.permutations(headers))
    return Record(
        topic=topic,
        key=draw(st.none() | st.binary(max_size=16)),
        value=value,
        headers=list(headers),
        timestamp=draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        timestamp_type=draw(st.sampled_from([0, 1])),
    )


@st.composite
def structured_commands(draw: st.DrawFn) -> Record:
    attributes: dict[str, Any] = {
        "specversion": draw(st.sampled_from(["1.0", 1.0, None, ["1.0"]])),
        "id": draw(st.text(min_size=1, max_size=8) | json_values),
        "source": draw(st.sampled_from(["fuzz", 7, {"a": 1}])),
        "type": draw(st.sampled_from(TYPES)),
        "authtoken": draw(st.sampled_from([GOOD_TOKEN, 12, None])),
        "data": draw(data_objects | json_values),
    }
    attributes |= draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    return Record(
        topic="commands",
        key=draw(st.none() | st.binary(max_size=16)),
        value=_raw_json(attributes),
        headers=draw(hostile_headers.filter(lambda hs: all(n != "ce_specversion" for n, _ in hs))),
    )


raw_records = st.builds(
    Record,
    topic=st.sampled_from(["commands", "legs"]),
    key=st.none() | st.binary(max_size=32),
    value=hostile_values,
    headers=hostile_headers,
    timestamp=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    timestamp_type=st.sampled_from([0, 1]),
)


def intake(records: list[Record]) -> tuple[list[Any], BatchDecider]:
    decoder = Decoder(SETTINGS, TokenKeys(secret=SECRET))
    items = asyncio.run(decoder.decode_all(records, NOW))
    loaded = Loaded(accounts={}, inbox={}, transfer_ids=set(), ref_ids=set(), unflushed={})
    decider = BatchDecider(
        loaded,
        now=NOW,
        source="tally",
        currencies=SETTINGS.currencies,
    )
    for item in items:
        if not isinstance(item, DeadItem):
            decider.apply(item)
    decider.settle_locally(lambda account: False)
    return items, decider


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(raw_records, binary_commands(), structured_commands()), max_size=4))
def test_every_record_of_any_bytes_ends_in_exactly_one_place(records: list[Record]) -> None:
    for offset, record in enumerate(records):
        record.offset = offset
    items, decider = intake(records)
    assert len(items) == len(records)
    plan = decider.plan
    dead = [i for i in items if isinstance(i, DeadItem)]
    work = [i for i in items if isinstance(i, CommandItem | LegItem)]
    assert len(dead) + len(work) == len(records)
    for item in dead:
        assert item.reason in {
            "undecodable",
            "invalid_envelope",
            "too_large",
            "untrusted_leg",
            "processing_error",
        }
    # each command or leg: decided once, or a duplicate of an earlier one in the batch
    assert len(plan.flush) + len(plan.republish) + len(_dead_in(plan)) == len(work)
    for item in work:
        if isinstance(item, CommandItem):
            record = next(r for r in [*plan.flush, *plan.republish] if r.id == item.inbox_id)
            assert record.outcome is not None or record.leg is not None


def _dead_in(plan: Any) -> list[Any]:
    """Dead letters the decider itself gives (legs not matching a transfer in flight)."""
    return list(getattr(plan, "dead", []))


def test_a_null_specversion_header_is_an_invalid_envelope_not_a_crash() -> None:
    record = Record("commands", b"k", b"{}", [("ce_specversion", None), ("ce_id", b"1")])
    items, _ = intake([record])
    assert isinstance(items[0], DeadItem) and items[0].reason == "invalid_envelope"
    assert "null" in items[0].detail


@pytest.mark.parametrize(
    ("headers", "reason", "words"),
    [
        ([("ce_id", b"\xff\xfe")], "invalid_envelope", "not UTF-8"),
        ([("ce_id", b"1"), ("CE_ID", b"2")], "invalid_envelope", "twice"),
        ([("content-type", None)], "invalid_envelope", "null"),
        ([(f"x-{i}", b"") for i in range(65)], "invalid_envelope", "headers"),
        ([("x-pad", b"p" * 70_000)], "too_large", "limit"),
    ],
)
def test_headers_that_cannot_be_read_are_dead_letters(
    headers: list[tuple[str, bytes | None]], reason: str, words: str
) -> None:
    items, _ = intake([Record("commands", None, b"{}", headers)])
    assert isinstance(items[0], DeadItem)
    assert (items[0].reason, words in items[0].detail) == (reason, True)


def test_a_header_with_an_unread_name_may_carry_any_bytes() -> None:
    value = orjson.dumps({"specversion": "1.0", "id": "c", "source": "s", "type": "nope"})
    items, _ = intake([Record("commands", None, value, [("x-bin", b"\xff"), ("x-null", None)])])
    assert isinstance(items[0], CommandItem)


def test_key_value_and_headers_count_together_toward_the_size_limit() -> None:
    limits = Limits(max_bytes=100, max_headers=64)
    too_big = decode(b"1" * 60, [("h", b"2" * 30)], limits, key=b"3" * 10)
    assert getattr(too_big, "reason", None) == "too_large"
    fits = decode(b"1" * 60, [("h", b"2" * 30)], limits, key=b"3" * 9)
    assert getattr(fits, "reason", None) != "too_large"


def test_json_nested_thousands_deep_is_undecodable() -> None:
    items, _ = intake([Record("commands", None, b"[" * 5000 + b"]" * 5000)])
    assert isinstance(items[0], DeadItem) and items[0].reason == "undecodable"


def _binary(data: bytes, ctype: str = "ledger.deposit.v1") -> Record:
    headers: list[tuple[str, bytes | None]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"c-1"),
        ("ce_source", b"fuzz"),
        ("ce_type", ctype.encode()),
        ("ce_authtoken", GOOD_TOKEN.encode()),
    ]
    return Record("commands", b"a", data, headers)


@pytest.mark.parametrize(
    "amount",
    [
        b"9" * 300,
        b"-" + b"9" * 300,
        b"1.5",
        b"1e400",
        b'"100"',
        b"true",
        b"null",
        b"18446744073709551616",
    ],
)
def test_an_amount_that_is_no_valid_integer_is_an_invalid_command(amount: bytes) -> None:
    data = b'{"account_id": "a", "amount": ' + amount + b', "currency": "EUR", "external_ref": "r"}'
    items, decider = intake([_binary(data)])
    assert isinstance(items[0], CommandItem), items[0]
    outcome = decider.plan.flush[0].outcome
    assert outcome is not None and outcome["type"] == "ledger.command.rejected.v1"
    assert outcome["data"]["reason"] == "invalid"
    assert outcome["data"]["errors"][0]["loc"] == ["amount"]


def test_nan_is_not_json() -> None:
    items, _ = intake([_binary(b'{"account_id": "a", "amount": NaN}')])
    assert isinstance(items[0], DeadItem) and items[0].reason == "undecodable"


def test_a_lone_surrogate_is_not_json_even_beside_a_huge_integer() -> None:
    value = b'{"account_id": "\\ud800", "amount": ' + b"9" * 40 + b"}"
    items, _ = intake([_binary(value)])
    assert isinstance(items[0], DeadItem) and items[0].reason == "undecodable"


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("id", 7), ("type", None), ("source", ["s"]), ("authtoken", {"t": 1}), ("subject", 1.5)],
)
def test_structured_attributes_of_the_wrong_json_type_are_invalid_envelopes(
    attribute: str, value: Any
) -> None:
    event = {"specversion": "1.0", "id": "c", "source": "s", "type": "ledger.deposit.v1"}
    items, _ = intake([Record("commands", None, orjson.dumps(event | {attribute: value}))])
    assert isinstance(items[0], DeadItem) and items[0].reason == "invalid_envelope"


def test_a_producer_timestamp_beyond_any_date_does_not_stop_the_batch() -> None:
    data = b'{"account_id": "a", "owner_id": "o", "currency": "EUR"}'
    record = _binary(data, "ledger.account.open.v1")
    record.timestamp = 2**63 - 1
    _, decider = intake([record])
    outcome = decider.plan.flush[0].outcome
    assert outcome is not None and outcome["type"] == "ledger.account.opened.v1"


def test_a_token_is_judged_at_the_append_time_where_the_broker_stamps_records() -> None:
    data = b'{"account_id": "a", "owner_id": "o", "currency": "EUR"}'
    expired_by_now = _token(int(NOW.timestamp()) - 60)  # valid when appended, 2 min ago
    appended = _binary(data, "ledger.account.open.v1")
    appended.headers[4] = ("ce_authtoken", expired_by_now.encode())
    appended.timestamp, appended.timestamp_type = int(NOW.timestamp() - 120) * 1000, 1
    backdated = _binary(data, "ledger.account.open.v1")
    backdated.headers[1] = ("ce_id", b"c-2")
    backdated.headers[4] = ("ce_authtoken", expired_by_now.encode())
    backdated.timestamp, backdated.timestamp_type = appended.timestamp, 0  # producer's own
    items, _ = intake([appended, backdated])
    assert isinstance(items[0], CommandItem) and isinstance(items[0].admission, tuple)
    assert isinstance(items[1], CommandItem) and not isinstance(items[1].admission, tuple)
    assert items[1].admission.reason == "unauthenticated"


def test_an_exception_reading_one_record_dead_letters_it_after_the_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def broken(*args: Any) -> Any:
        calls.append(1)
        raise AttributeError("'NoneType' object has no attribute 'decode'")

    monkeypatch.setattr("streams.intake.admit", broken)
    good = _binary(b'{"account_id": "a", "owner_id": "o", "currency": "EUR"}')
    items, _ = intake([good])
    assert isinstance(items[0], DeadItem) and items[0].reason == "processing_error"
    assert items[0].detail.startswith("AttributeError: ")
    assert len(calls) == SETTINGS.record_max_attempts


def test_a_processing_error_detail_never_carries_a_token() -> None:
    from streams.intake import failure_detail

    detail = failure_detail(ValueError(f"bad input {GOOD_TOKEN} here"))
    assert GOOD_TOKEN not in detail and "[token]" in detail
