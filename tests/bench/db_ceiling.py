"""Database ceiling: Tally's own writes for the workload, replayed straight into MongoDB."""

# The counts of each kind of write are Tally's own, from its `tally_mongo_writes_total` metric
# (documents sent for writing, by operation and kind) over the timed run; the documents are
# copies of median-size documents Tally wrote, and every write is a single-document operation
# by `_id` in bulk writes, split into as many rounds as Tally had batches. No reads, no Kafka:
# the most this server can absorb. Each kind is written as streams/store.py writes it, in the
# same order and with the same concurrency (first-write-wins records as inserts; account and
# transfer changes as updates, in UPDATE_STREAMS concurrent bulk writes; journal, transfers and
# refs together; the saga's completion as an upsert), but every update's filter is `_id` alone,
# the cheapest form, and all of a batch's account updates go in one round (Tally needs two
# when it settles transfers locally).

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from streams.store import UPDATE_STREAMS
from tests.bench.progress import Progress

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Writes:
    """How many single-document writes of each kind Tally made during the timed run."""

    accounts: int  # version-checked account updates (state + outbox)
    entries: int  # journal inserts
    transfers_new: int  # transfer inserts (debited, or settled when credited in the batch)
    transfers_settled: int  # transfer updates (completed/failed, settled in a later batch)
    refs: int  # external_ref claims (inserts)
    inbox: int  # inbox inserts (commands and legs)
    completes: int  # terminal outcome recorded on the transfer command's inbox record
    batches: int

    @property
    def total(self) -> int:
        return (
            self.accounts
            + self.entries
            + self.transfers_new
            + self.transfers_settled
            + self.refs
            + self.inbox
            + self.completes
        )


@dataclass(frozen=True, slots=True)
class Templates:
    account: Doc
    entry: Doc
    transfer: Doc
    ref: Doc
    inbox: Doc


def writes_from_metrics(metrics: dict[str, float], batches: int) -> Writes:
    """Tally's writes of a run, from its `tally_mongo_writes_total{operation,kind}` counters."""

    counts: dict[tuple[str, str], int] = {}
    for key, value in metrics.items():
        name, _, labels = key.partition("{")
        if name == "tally_mongo_writes_total":
            found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            counts[(found["operation"], found["kind"])] = int(value)

    def count(operation: str, kind: str) -> int:
        return counts.get((operation, kind), 0)

    return Writes(
        accounts=count("accounts", "update"),
        entries=count("entries", "insert"),
        transfers_new=count("transfers", "insert"),
        transfers_settled=count("transfers", "update"),
        refs=count("external_refs", "insert"),
        inbox=count("inbox", "insert"),
        completes=count("inbox_complete", "update"),
        batches=max(batches, 1),
    )


async def templates(db: AsyncDatabase[Doc]) -> Templates:
    """A document of median size from each collection, as Tally wrote it."""
    found = [
        await _median(db, "accounts", {}),
        await _median(db, "entries", {"kind": "transfer_out"}),
        await _median(db, "transfers", {}),
        await _median(db, "external_refs", {}),
        await _median(db, "inbox", {"_id": {"$regex": "^c:"}}),
    ]
    if any(d is None for d in found):
        raise RuntimeError("Tally's database lacks a document to copy; did the run write?")
    return Templates(*found)  # type: ignore[arg-type]


async def _median(db: AsyncDatabase[Doc], collection: str, query: Doc) -> Doc | None:
    docs = [d async for d in db[collection].find(query).limit(1000)]
    docs.sort(key=lambda d: len(bson.encode(d)))
    return docs[len(docs) // 2] if docs else None


def _split(count: int, parts: int) -> list[int]:
    base, extra = divmod(count, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class _Ids:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n:09d}"


async def run(uri: str, database: str, writes: Writes, tpl: Templates, accounts: int) -> float:
    """Replays `writes`; returns the elapsed seconds."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(uri, w="majority", journal=True)
    db = client[database]
    account_ids = [f"acc-{i:06d}" for i in range(accounts)]
    await db["accounts"].insert_many([{**tpl.account, "_id": a} for a in account_ids])
    ids = {k: _Ids(f"{k}-") for k in ("entry", "transfer", "ref", "inbox")}
    settle: list[str] = []
    rounds = list(
        zip(
            *(
                _split(n, writes.batches)
                for n in (
                    writes.accounts,
                    writes.entries,
                    writes.transfers_new,
                    writes.transfers_settled,
                    writes.refs,
                    writes.inbox,
                    writes.completes,
                )
            ),
            strict=True,
        )
    )
    state = {k: v for k, v in tpl.account.items() if k != "_id"}
    SPENT.clear()
    cursor = 0
    started = time.perf_counter()
    done = 0
    try:
        with Progress("database ceiling", writes.total) as bar:
            for n_acc, n_ent, n_new, n_set, n_ref, n_inb, n_cpl in rounds:
                chosen = [account_ids[(cursor + i) % accounts] for i in range(n_acc)]
                cursor += n_acc
                # Every update changes the document (a server may skip a no-op update).
                account_ops = [
                    UpdateOne({"_id": a}, {"$set": {**state, "version": cursor, "balance": i}})
                    for i, a in enumerate(chosen)
                ]
                await _concurrently(db, "accounts", account_ops)
                fresh = [ids["transfer"].next() for _ in range(n_new)]
                settle += fresh
                settled, settle = settle[:n_set], settle[n_set:]
                entries = [
                    InsertOne({**tpl.entry, "_id": ids["entry"].next()}) for _ in range(n_ent)
                ]
                await asyncio.gather(
                    _bulk(db, "entries", entries),
                    _transfers(db, tpl.transfer, fresh, settled),
                    _bulk(db, "external_refs", _inserts(tpl.ref, ids["ref"], n_ref)),
                )
                await _bulk(db, "inbox", _inserts(tpl.inbox, ids["inbox"], n_inb))
                completes = [
                    UpdateOne({"_id": f"x-{t}"}, {"$set": {"outcome": tpl.inbox}}, upsert=True)
                    for t in settled[:n_cpl]
                ]
                await _bulk(db, "inbox", completes)
                done += n_acc + n_ent + n_new + len(settled) + n_ref + n_inb + len(completes)
                bar.update(done)
        return time.perf_counter() - started
    finally:
        await client.close()


async def _transfers(
    db: AsyncDatabase[Doc], template: Doc, fresh: list[str], settled: list[str]
) -> None:
    debited = {**template, "state": "debited"}
    await _bulk(db, "transfers", [InsertOne({**debited, "_id": t}) for t in fresh])
    settle_ops = [
        UpdateOne({"_id": t}, {"$set": {"state": "completed", "updated_at": _now()}})
        for t in settled
    ]
    await _concurrently(db, "transfers", settle_ops)


async def _concurrently(db: AsyncDatabase[Doc], collection: str, ops: list[Any]) -> None:
    """Updates split into UPDATE_STREAMS concurrent bulk writes, as streams/store.py does."""
    size = max(1, -(-len(ops) // UPDATE_STREAMS))
    parts = [ops[i : i + size] for i in range(0, len(ops), size)]
    await asyncio.gather(*(_bulk(db, collection, part) for part in parts))


def _inserts(template: Doc, ids: _Ids, count: int) -> list[Any]:
    return [InsertOne({**template, "_id": ids.next()}) for _ in range(count)]


def _now() -> datetime:
    return datetime.now(UTC)


SPENT: dict[str, float] = {}  # seconds per collection in the last run, for the report


async def _bulk(db: AsyncDatabase[Doc], collection: str, ops: list[Any]) -> None:
    if ops:
        started = time.perf_counter()
        await db[collection].bulk_write(ops, ordered=False)
        SPENT[collection] = SPENT.get(collection, 0.0) + time.perf_counter() - started
