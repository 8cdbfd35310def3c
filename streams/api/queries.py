"""The API's reads of MongoDB: each one a lookup by `_id` or one walk of an index, never a scan.

An account document is the commit point of every decision on it (ADR 4): its outbox holds the
decisions made since its last flush, entries included, which may not be in `entries` yet. The
statement and balance reads take those entries too, so what a reader sees never lags what the
account's balance already says, and a cursor walk cannot pass an entry that arrives late.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from models.ids import command_inbox_id
from streams.store import MongoStore, outbox_records, timed

Doc = dict[str, Any]
_EPOCH, _MS = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)
ENTRY_ORDER = [("at", -1), ("_id", -1)]  # newest first; _id breaks ties within one batch
# Serves the statement pages and balance lookups: equality on the account, then the order.
ENTRY_INDEX = [("account_id", 1), ("at", -1), ("_id", -1)]


class BadCursorError(ValueError):
    """A `cursor` that this API did not hand out."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a statement page ends: the last entry shown, by (at, _id)."""

    at: datetime
    entry_id: str

    def encode(self) -> str:
        ms = (self.at - _EPOCH) // _MS  # integers: a float would be a millisecond off
        raw = orjson.dumps([ms, self.entry_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            ms, entry_id = orjson.loads(raw)
            if not isinstance(ms, int) or not isinstance(entry_id, str):
                raise TypeError
            return cls(_EPOCH + ms * _MS, entry_id)
        except (binascii.Error, ValueError, TypeError, OverflowError, OSError):
            raise BadCursorError("cursor is not one this API handed out") from None


@dataclass(frozen=True, slots=True)
class Window:
    """Which entries a statement shows: `at` within [start, end], before `after` if given."""

    start: datetime | None = None
    end: datetime | None = None
    after: Position | None = None

    def query(self, account_id: str) -> Doc:
        query: Doc = {"account_id": account_id}
        bounds = {op: t for op, t in (("$gte", self.start), ("$lte", self.end)) if t is not None}
        if bounds:
            query["at"] = bounds
        if self.after is not None:
            at, entry_id = self.after.at, self.after.entry_id
            query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": entry_id}}]
        return query

    def holds(self, entry: Doc) -> bool:
        at = entry["at"]
        if (self.start and at < self.start) or (self.end and at > self.end):
            return False
        return self.after is None or _key(entry) < (self.after.at, self.after.entry_id)


class LedgerReads:
    """Accounts, statements, balances at a time, transfers and command outcomes."""

    def __init__(self, store: MongoStore) -> None:
        self._store = store

    async def ensure_indexes(self) -> None:
        async with timed("create_indexes"):
            await self._store.entries.create_index(ENTRY_INDEX, name="account_at_id")

    async def account(self, account_id: str) -> Doc | None:
        async with timed("api_account"):
            return await self._store.accounts.find_one({"_id": account_id})

    async def transfer(self, transfer_id: str) -> Doc | None:
        async with timed("api_transfer"):
            return await self._store.transfers.find_one({"_id": transfer_id})

    async def outcome(self, command_id: str) -> Doc | None:
        """The command's terminal outcome as stored, or None while it has none."""
        async with timed("api_outcome"):
            record = await self._store.inbox.find_one({"_id": command_inbox_id(command_id)})
        return record.get("outcome") if record else None

    async def owners(self, account_ids: Iterable[str]) -> dict[str, str]:
        async with timed("api_owners"):
            found = self._store.accounts.find({"_id": {"$in": list(account_ids)}}, {"owner_id": 1})
            return {doc["_id"]: doc["owner_id"] async for doc in found}

    async def entries(self, account: Doc, window: Window, limit: int) -> tuple[list[Doc], bool]:
        """Up to `limit` entries of the window, newest first, and whether more follow."""
        async with timed("api_entries"):
            cursor = self._store.entries.find(window.query(account["_id"]))
            stored = await cursor.sort(ENTRY_ORDER).limit(limit + 1).to_list()
        page = _merged(stored, (e for e in _unflushed(account) if window.holds(e)))
        return page[:limit], len(page) > limit

    async def balance_at(self, account: Doc, at: datetime) -> int:
        """The balance after the last entry at or before `at`: one batch's entries, not the
        account's history. Entries of one batch share their `at`; their chain is followed by
        `balance_after - amount`, since `_id` does not order them."""
        window = Window(end=at)
        while True:
            async with timed("api_balance"):
                latest = await self._store.entries.find_one(
                    window.query(account["_id"]), sort=ENTRY_ORDER
                )
            unflushed = [e for e in _unflushed(account) if window.holds(e)]
            candidates = _merged([latest] if latest else [], unflushed)
            if not candidates:
                return 0
            batch_at = candidates[0]["at"]
            async with timed("api_balance"):
                same = self._store.entries.find({"account_id": account["_id"], "at": batch_at})
                batch = _merged(await same.to_list(), (e for e in unflushed if e["at"] == batch_at))
            end = chain_end(batch)
            if end is not None:
                return end
            # The batch's postings net to zero: its end is where it began, before it.
            window = Window(end=batch_at, after=Position(batch_at, ""))


def chain_end(batch: list[Doc]) -> int | None:
    """The balance after the last of one batch's entries, or None if they net to zero.

    Each entry moves the balance from `balance_after - amount` to `balance_after`; the path
    through them ends at the one balance reached once more than it is left."""
    flow: dict[int, int] = {}
    for entry in batch:
        after = entry["balance_after"]
        flow[after] = flow.get(after, 0) + 1
        flow[after - entry["amount"]] = flow.get(after - entry["amount"], 0) - 1
    ends = [balance for balance, net in flow.items() if net > 0]
    return ends[0] if ends else None


def _key(entry: Doc) -> tuple[datetime, str]:
    return entry["at"], entry["_id"]


def _unflushed(account: Doc) -> list[Doc]:
    entries = (e for r in outbox_records(account) for e in r.get("entries") or ())
    return [e for e in entries if e["account_id"] == account["_id"]]


def _merged(stored: list[Doc], unflushed: Iterable[Doc]) -> list[Doc]:
    """Stored and unflushed entries, each once, newest first."""
    by_id = {e["_id"]: e for e in unflushed} | {e["_id"]: e for e in stored}
    return sorted(by_id.values(), key=_key, reverse=True)
