"""MongoDB adapter: one atomic write per account, idempotent derived writes, all by _id."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions
from prometheus_client import Histogram
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from models.ids import command_inbox_id
from streams import metrics
from streams.errors import TallyError
from streams.ports import Collection
from streams.writes import AccountWrite, Effects

Doc = dict[str, Any]
_DUPLICATE_KEY = 11000
_NOT_IMPLEMENTED = 238  # FerretDB: "Index option expireAfterSeconds is not implemented yet"
_INDEX_CONFLICT = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict
_TTL = "inbox_ttl"
UPDATE_STREAMS = 4  # concurrent bulk writes for a batch's updates (see _parts)
_OUTBOX_CODEC: CodecOptions[Doc] = CodecOptions(tz_aware=True)


class ConflictError(TallyError):
    """Another writer changed an account since it was loaded; the batch is decided again."""


class MongoStore:
    """Tally's collections: accounts, entries, transfers (contract §9), inbox, external_refs."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self._client = client
        db: AsyncDatabase[Doc] = client[database]
        self.accounts: AsyncCollection[Doc] = db["accounts"]
        self.entries: AsyncCollection[Doc] = db["entries"]
        self.transfers: AsyncCollection[Doc] = db["transfers"]
        self.inbox: AsyncCollection[Doc] = db["inbox"]
        self.refs: AsyncCollection[Doc] = db["external_refs"]
        self.heartbeats: AsyncCollection[Doc] = db["workers"]
        self._collections: dict[Collection, AsyncCollection[Doc]] = {
            "accounts": self.accounts,
            "entries": self.entries,
            "transfers": self.transfers,
            "inbox": self.inbox,
            "external_refs": self.refs,
            "workers": self.heartbeats,
        }

    @classmethod
    def connect(cls, uri: str, database: str, timeout_ms: int = 5000) -> MongoStore:
        # Acknowledged by a majority and journaled unless the URI says otherwise: an account
        # write is the commit point of a decision (ADR 4), so it must survive a server crash.
        query = uri.partition("?")[2].lower()
        durability: dict[str, Any] = {}
        if "w=" not in query:
            durability["w"] = "majority"
        if "journal=" not in query:
            durability["journal"] = True
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            **durability,
        )
        return cls(client, database)

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        async with timed("ping"):
            await self._client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        async with timed("create_indexes"):
            await self.accounts.create_index("owner_id")
            await self.entries.create_index([("account_id", 1), ("at", 1)])
            await self.entries.create_index("command_id")
            await self.transfers.create_index("from_account")
            await self.transfers.create_index("to_account")

    async def find_by_ids(self, collection: Collection, ids: Iterable[str]) -> dict[str, Doc]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        async with timed(f"find_{collection}"):
            found = self._collections[collection].find({"_id": {"$in": wanted}})
            return {doc["_id"]: doc async for doc in found}

    async def put_inbox(self, records: Sequence[Doc]) -> list[str]:
        """Insert inbox records; an existing record wins (first decision is final).

        Returns the ids that already had a record: decided by someone else first.
        """
        # Inserts, not `$setOnInsert` upserts: same outcome, but FerretDB runs an update or
        # upsert by _id as a scan of the collection, which made the growing inbox quadratic.
        return await self._insert_all(self.inbox, list(records), "inbox")

    async def complete_commands(self, outcomes: Sequence[Doc]) -> None:
        """Record a saga's terminal outcome on the transfer command's inbox record."""
        # `at` on a record this creates (the saga ended before its command's record was
        # written, which then stays out): retention goes by it, as for every inbox record.
        now = datetime.now(UTC)
        ops = [
            UpdateOne(
                {"_id": command_inbox_id(o["correlationid"])},
                {"$set": {"outcome": o}, "$setOnInsert": {"at": now}},
                upsert=True,
            )
            for o in outcomes
        ]
        await self._bulk(self.inbox, ops, "inbox_complete")

    async def expire_inbox(self, seconds: int) -> bool:
        """A TTL index that removes inbox records `seconds` after their `at`. False where the
        server has no TTL indexes (FerretDB): then the worker sweeps (streams.retention)."""
        try:
            async with timed("create_indexes"):
                await self.inbox.create_index("at", name=_TTL, expireAfterSeconds=seconds)
        except OperationFailure as exc:
            if exc.code == _NOT_IMPLEMENTED:
                return False
            if exc.code not in _INDEX_CONFLICT:
                raise
            # The window changed since the index was made: change the index, not the data.
            change = {"name": _TTL, "expireAfterSeconds": seconds}
            await self.inbox.database.command("collMod", "inbox", index=change)
        return True

    async def sweep_inbox(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` inbox records decided before `before`; how many went."""
        async with timed("inbox_sweep"):
            old = self.inbox.find({"at": {"$lt": before}}, {"_id": 1}).limit(limit)
            ids = [doc["_id"] async for doc in old]
            if not ids:
                return 0
            gone = await self.inbox.delete_many({"_id": {"$in": ids}, "at": {"$lt": before}})
        return gone.deleted_count

    async def write_accounts(self, writes: Sequence[AccountWrite]) -> None:
        """One atomic single-document write per account, version-checked."""
        ops: list[Any] = [_account_op(w) for w in writes]
        updates = sum(1 for op in ops if isinstance(op, UpdateOne))
        metrics.MONGO_WRITES.labels("accounts", "update").inc(updates)
        metrics.MONGO_WRITES.labels("accounts", "insert").inc(len(ops) - updates)
        if not ops:
            return
        async with timed("accounts"):
            results = await asyncio.gather(
                *(self.accounts.bulk_write(part, ordered=False) for part in _parts(ops)),
                return_exceptions=True,
            )
        matched = 0
        for result in results:
            if isinstance(result, BulkWriteError):
                errors = len(result.details["writeErrors"])
                raise ConflictError(f"{errors} account write(s) conflicted") from result
            if isinstance(result, BaseException):
                raise result
            matched += result.matched_count
        expected = sum(1 for w in writes if w.loaded_version is not None)
        if matched != expected:
            raise ConflictError(f"{expected - matched} account(s) changed since loaded")

    async def write_effects(self, effects: Effects) -> None:
        # Three independent collections, written concurrently: two round trips fewer in a row.
        await asyncio.gather(
            self._insert_all(self.entries, effects.entries, "entries"),
            self._write_transfers(effects),
            self._insert_all(self.refs, effects.refs, "external_refs"),
        )

    async def beat(self, worker: Doc) -> None:
        """Replace the worker's heartbeat document (contract §15): one per worker process."""
        async with timed("heartbeat"):
            await self.heartbeats.replace_one({"_id": worker["_id"]}, worker, upsert=True)

    async def workers(self, since: datetime) -> list[Doc]:
        # A handful of documents, one per worker process seen lately: no index needed.
        async with timed("workers"):
            found = self.heartbeats.find({"at": {"$gte": since}}).sort("_id", 1)
            return await found.to_list()

    async def forget_workers(self, before: datetime) -> int:
        async with timed("workers_forget"):
            gone = await self.heartbeats.delete_many({"at": {"$lt": before}})
        return gone.deleted_count

    async def _write_transfers(self, effects: Effects) -> None:
        # New documents are inserted (an existing one wins, as with put_inbox) before the
        # settled transfers are updated, so a debit and its settlement can share a flush.
        existed = set(await self._insert_all(self.transfers, effects.new_transfers, "transfers"))
        updates = effects.transfer_updates
        updates += [u for u in effects.settle_if_present if u["_id"] in existed]
        transfer_ops = [
            UpdateOne({"_id": u["_id"], "command_id": u["command_id"]}, {"$set": u["set"]})
            for u in updates
        ]
        await asyncio.gather(
            *(self._bulk(self.transfers, h, "transfers") for h in _parts(transfer_ops))
        )

    async def _insert_all(
        self, collection: AsyncCollection[Doc], docs: list[Doc], op: str
    ) -> list[str]:
        """Insert what is new; returns the ids of documents that already existed."""
        if not docs:
            return []
        metrics.MONGO_WRITES.labels(op, "insert").inc(len(docs))
        try:
            async with timed(op):
                await collection.bulk_write([InsertOne(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            # A repeated flush re-inserts entries that already exist: that is the idempotence.
            errors = exc.details["writeErrors"]
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            return [docs[e["index"]]["_id"] for e in errors]
        return []

    async def _bulk(self, collection: AsyncCollection[Doc], ops: list[Any], op: str) -> None:
        if ops:
            metrics.MONGO_WRITES.labels(op, "update").inc(len(ops))
            async with timed(op):
                await collection.bulk_write(ops, ordered=False)


def _parts(ops: list[Any]) -> list[list[Any]]:
    # Updates go out as several bulk writes at once: FerretDB runs every update statement on
    # its own (read, write, commit), so more connections keep more cores busy. Measured in
    # docs/performance.md: 2 -> 4 streams cut open-loop p99 by a third; 8 did not help.
    size = max(1, -(-len(ops) // UPDATE_STREAMS))
    return [ops[i : i + size] for i in range(0, len(ops), size)] or [ops]


def outbox_records(account: Doc) -> list[Doc]:
    """The outbox of a stored account document (either form, see _packed_outbox)."""
    outbox = account.get("outbox")
    if isinstance(outbox, bytes):
        records: list[Doc] = bson.decode(outbox, codec_options=_OUTBOX_CODEC)["records"]
        return records
    return list(outbox or [])


def _packed_outbox(records: list[Doc]) -> bytes:
    # One BSON binary, not an array of documents: the same bytes and types, but the server
    # handles one value instead of every nested field (FerretDB converts each of them on every
    # read and write; that made account writes 2-3x dearer). Only this module reads it back.
    return bson.encode({"records": records})


def _account_op(write: AccountWrite) -> InsertOne[Doc] | UpdateOne:
    outbox = _packed_outbox(write.outbox)
    if write.loaded_version is None:
        return InsertOne({**write.document, "version": 1, "outbox": outbox})
    fields = {k: v for k, v in write.document.items() if k != "_id"}
    fields |= {"version": write.loaded_version + 1, "outbox": outbox}
    return UpdateOne(
        {"_id": write.document["_id"], "version": write.loaded_version}, {"$set": fields}
    )


def timed(operation: str) -> Timed:
    """`async with timed("accounts"): ...` puts the block's time in tally_mongo_seconds."""
    return Timed(_mongo_seconds(operation))


_mongo_seconds = functools.lru_cache(maxsize=256)(metrics.MONGO_SECONDS.labels)


class Timed:
    """A plain class, not @asynccontextmanager: every API read passes through one, and the
    generator-based one with its labels() lookup cost 2.5 times as much (10 µs against 4)."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(self, *_: object) -> None:
        self._histogram.observe(time.perf_counter() - self._started)
