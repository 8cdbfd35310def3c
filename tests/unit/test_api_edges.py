"""The pure parts of `tally api`: reading an HTTP CloudEvent, Prefer, cursors, balance chains,
and replies matched by correlation id. No network, no database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from handlers.auth import Principal
from handlers.permissions import may_read, reads_every_account
from models.events import Deposited
from streams.api import commands
from streams.api.commands import preferred_wait
from streams.api.problems import ProblemError
from streams.api.queries import BadCursorError, Position, Window, chain_end
from streams.api.replies import Replies, event_json, structured
from streams.api.submit import submission
from streams.codec import Limits, decode, encode
from streams.outcomes import stored_event

pytestmark = pytest.mark.unit
LIMITS = Limits(max_bytes=65536, max_headers=64)
BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "c-1",
    "ce-source": "app",
    "ce-type": "ledger.transfer.v1",
    "content-type": "application/json",
}
TRANSFER = {"transfer_id": "t", "from_account": "a", "to_account": "b", "amount": 1}


def _submit(headers: dict[str, str], body: bytes) -> Any:
    return submission(Headers(headers), body, "the.bearer.token", LIMITS)


def test_a_binary_mode_command_becomes_the_record_a_worker_reads_keyed_by_its_source() -> None:
    command = _submit(BINARY, orjson.dumps(TRANSFER))
    assert command.command_id == "c-1" and command.key == b"a"
    event = decode(command.value, list(command.headers), LIMITS, key=command.key)
    assert not hasattr(event, "reason"), event
    assert event.attributes["authtoken"] == "the.bearer.token"  # type: ignore[union-attr]
    assert event.data == TRANSFER  # type: ignore[union-attr]


def test_a_structured_mode_command_goes_to_kafka_in_binary_mode() -> None:
    event = {"specversion": "1.0", "id": "c-2", "source": "app", "type": "ledger.deposit.v1"}
    body = orjson.dumps(event | {"data": {"account_id": "acc", "amount": 5}})
    command = _submit({"content-type": "application/cloudevents+json"}, body)
    headers = dict(command.headers)
    assert headers["ce_id"] == b"c-2" and headers["content-type"] == b"application/json"
    assert orjson.loads(command.value) == {"account_id": "acc", "amount": 5}
    assert command.key == b"acc"


def test_percent_encoded_header_values_are_decoded() -> None:
    command = _submit(BINARY | {"ce-source": "caf%C3%A9"}, b"{}")
    assert dict(command.headers)["ce_source"] == "café".encode()


@pytest.mark.parametrize(
    ("headers", "body", "status", "words"),
    [
        (BINARY | {"ce-authtoken": "x"}, b"{}", 400, "authtoken"),
        (BINARY | {"ce-type": "ledger.nope.v1"}, b"{}", 400, "unsupported_type"),
        (BINARY | {"ce-specversion": "1.1"}, b"{}", 400, "specversion"),
        (BINARY | {"content-type": "text/csv"}, b"{}", 415, "content-type"),
        (BINARY, b"[1,", 400, "undecodable"),
        (BINARY, b"{" + b'"m":"' + b"x" * 70000 + b'"}', 413, "too_large"),
        (BINARY | {"ce-source": "%FF"}, b"{}", 400, "UTF-8"),
        ({"content-type": "application/cloudevents+json"}, b"[]", 400, "object"),
        ({"content-type": "application/cloudevents+json"}, b'{"specversion":"1.0"}', 400, "data"),
        (
            {"content-type": "application/cloudevents+json"},
            b'{"specversion":"1.0","id":1,"source":"s","type":"t","data":{}}',
            400,
            "not a string",
        ),
    ],
)
def test_what_is_no_command_is_refused_with_a_status_and_a_reason(
    headers: dict[str, str], body: bytes, status: int, words: str
) -> None:
    with pytest.raises(ProblemError) as refused:
        _submit(headers, body)
    assert refused.value.status == status
    assert words in refused.value.detail


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        (None, 0.0),
        ("wait=5", 5.0),
        ("respond-async, wait=12", 12.0),
        ("wait=600", 30.0),
        ("handling=lenient; wait=3", 3.0),
        ("wait=soon", 0.0),
    ],
)
def test_prefer_wait_is_read_and_capped(prefer: str | None, seconds: float) -> None:
    assert preferred_wait(prefer, 30.0) == seconds


@given(
    at=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)
    ),
    entry_id=st.text(max_size=80),
)
def test_a_cursor_reads_back_as_the_position_it_was_made_from(at: datetime, entry_id: str) -> None:
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    assert Position.decode(Position(at, entry_id).encode()) == Position(at, entry_id)


@pytest.mark.parametrize("cursor", ["", "!!", "bnVsbA", "WzEsMl0", "WyJ4IiwieSJd"])
def test_a_cursor_the_api_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursorError):
        Position.decode(cursor)


def test_a_window_holds_the_entries_before_its_cursor_within_its_bounds() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window(start=t, end=t + timedelta(hours=1), after=Position(t, "m"))
    assert window.holds({"at": t, "_id": "a"})
    assert not window.holds({"at": t, "_id": "z"})  # after the cursor: on an earlier page
    assert not window.holds({"at": t - timedelta(seconds=1), "_id": "a"})
    query = window.query("acc")
    assert query["account_id"] == "acc" and query["at"] == {
        "$gte": t,
        "$lte": t + timedelta(hours=1),
    }
    assert query["$or"] == [{"at": {"$lt": t}}, {"at": t, "_id": {"$lt": "m"}}]


def _entries(start: int, amounts: list[int]) -> list[dict[str, int]]:
    entries, balance = [], start
    for amount in amounts:
        balance += amount
        entries.append({"amount": amount, "balance_after": balance})
    return entries


@given(
    start=st.integers(-1000, 1000),
    amounts=st.lists(st.integers(-500, 500).filter(bool), min_size=1, max_size=12),
    order=st.randoms(use_true_random=False),
)
def test_the_end_of_a_batch_is_found_in_any_order_unless_it_nets_to_zero(
    start: int, amounts: list[int], order: Any
) -> None:
    batch = _entries(start, amounts)
    order.shuffle(batch)
    end = chain_end(batch)
    if sum(amounts) == 0:
        assert end is None
    else:
        assert end == start + sum(amounts)


@pytest.mark.parametrize(
    ("roles", "owners", "allowed"),
    [
        ({"ops"}, [], True),
        ({"payments"}, ["someone"], True),
        ({"customer"}, ["alice"], True),
        ({"customer"}, ["bob", "alice"], True),
        ({"customer"}, ["bob"], False),
        ({"customer"}, [], False),
        ({"risk"}, ["alice"], False),
        (set(), ["alice"], False),
    ],
)
def test_who_may_read_a_record(roles: set[str], owners: list[str], allowed: bool) -> None:
    principal = Principal("alice", frozenset(roles))
    assert may_read(principal, owners) is allowed
    assert reads_every_account(principal) is bool(roles & {"ops", "payments"})


def _published(command_id: str) -> tuple[dict[str, Any], list[tuple[str, bytes]], bytes]:
    data = Deposited(account_id="a", amount=5, currency="EUR", external_ref="r", balance=5)
    stored = stored_event(
        data,
        Deposited.TYPE,
        subject="a",
        command_id=command_id,
        causation_id=command_id,
        source="tally",
        time=datetime(2026, 12, 7, tzinfo=UTC),
        traceparent=None,
    )
    value, headers = encode(stored)
    return stored, headers, value


def test_an_outcome_reads_the_same_from_kafka_as_from_the_store() -> None:
    stored, headers, value = _published("c-9")
    assert structured((headers, value)) == event_json(stored)
    assert event_json(stored)["specversion"] == "1.0" and "traceparent" not in event_json(stored)


async def test_a_waiter_gets_the_outcome_with_its_correlation_id_and_no_other() -> None:
    replies = Replies(lambda: None, "events")  # type: ignore[arg-type,return-value]
    _, mine, value = _published("mine")
    _, other, _ = _published("other")
    with replies.expect("mine") as reply:
        replies._arrived(other, value)
        assert not reply.done()
        replies._arrived(mine, value)
        assert (await asyncio.wait_for(reply, 1))[0] == mine
    assert not replies._waiting


async def test_an_outcome_consumed_before_anyone_waited_is_still_the_reply() -> None:
    replies = Replies(lambda: None, "events")  # type: ignore[arg-type,return-value]
    _, headers, value = _published("early")
    replies._arrived(headers, value)
    with replies.expect("early") as reply:
        assert reply.done() and reply.result()[0] == headers


class _Store:
    """The outcomes the store holds, and when it was asked (seconds after the wait began)."""

    def __init__(self, outcome: dict[str, Any] | None = None, after: int = 0) -> None:
        self.asked: list[float] = []
        self._outcome, self._after = outcome, after  # found from the `after`-th lookup on
        self._began = asyncio.get_running_loop().time()

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        self.asked.append(asyncio.get_running_loop().time() - self._began)
        return self._outcome if len(self.asked) > self._after else None


@pytest.fixture
def quick_store_lookup(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(commands, "STORE_AFTER_S", 0.05)
    return 0.05


async def test_a_reply_in_time_is_the_answer_and_the_store_is_not_asked(
    quick_store_lookup: float,
) -> None:
    stored, headers, value = _published("fast")
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reply.set_result((headers, value))
    store = _Store(stored)
    assert await commands._outcome(store, reply, "fast", 1.0) == event_json(stored)  # type: ignore[arg-type]
    assert store.asked == []


async def test_no_reply_for_a_while_looks_in_the_store(quick_store_lookup: float) -> None:
    stored, _, _ = _published("early")
    store = _Store(stored)  # published before the consumer was in place: never a reply
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    assert await commands._outcome(store, never, "early", 5.0) == event_json(stored)  # type: ignore[arg-type]
    assert len(store.asked) == 1 and quick_store_lookup <= store.asked[0] < 1.0


async def test_the_store_is_asked_again_when_the_wait_ends(quick_store_lookup: float) -> None:
    stored, _, _ = _published("late")
    store = _Store(stored, after=1)
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    assert await commands._outcome(store, never, "late", 0.2) == event_json(stored)  # type: ignore[arg-type]
    assert len(store.asked) == 2 and store.asked[1] >= 0.2
    nothing = _Store()
    assert await commands._outcome(nothing, never, "none", 0.02) is None  # type: ignore[arg-type]
    assert len(nothing.asked) == 1  # a wait shorter than STORE_AFTER_S: once, at its end


def test_a_verified_token_is_remembered_until_its_exp_and_never_longer() -> None:
    import jwt as pyjwt

    from streams.api.security import Verified

    seen = Verified()
    alice = Principal("alice", frozenset({"customer"}))
    token = pyjwt.encode({"sub": "alice", "exp": 1_000_030}, "k" * 32)
    seen.put(token, alice, now=1_000_000.0)
    assert seen.get(token, now=1_000_029.9) == alice
    assert seen.get(token, now=1_000_030.0) is None  # expired: verified again, and refused
    long_lived = pyjwt.encode({"sub": "alice", "exp": 9_000_000}, "k" * 32)
    seen.put(long_lived, alice, now=1_000_000.0)
    assert seen.get(long_lived, now=1_000_000.0 + Verified.CACHE_S) is None  # at most CACHE_S
    seen.put("not.a-jwt", alice, now=1_000_000.0)
    assert seen.get("not.a-jwt", now=1_000_000.0) is None
