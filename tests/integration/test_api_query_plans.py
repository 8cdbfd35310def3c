"""Every query of `tally api` is served by an index: the server's own plan says so.

On FerretDB (SQLite) the plan names the SQLite index it searches; on MongoDB the winning plan
is an IXSCAN (or an _id lookup), never a COLLSCAN. Statement pages and balance lookups walk
the `account_at_id` index the API creates; the other reads go by `_id`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.api.queries import ENTRY_ORDER, LedgerReads, Position, Window
from streams.store import MongoStore
from tests.conftest import MONGO_URI

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture
async def reads() -> AsyncIterator[tuple[LedgerReads, MongoStore]]:
    name = f"plans_{uuid.uuid4().hex[:8]}"
    store = MongoStore.connect(MONGO_URI, name)
    reads = LedgerReads(store)
    await store.ensure_indexes()
    await reads.ensure_indexes()
    entries = [
        {
            "_id": f"c{a}-{i}:deposit",
            "account_id": f"acc-{a}",
            "amount": 1,
            "balance_after": i + 1,
            "command_id": f"c{a}-{i}",
            "kind": "deposit",
            "at": T0 + timedelta(seconds=i),
        }
        for a in range(20)
        for i in range(50)
    ]
    await store.entries.insert_many(entries)
    yield reads, store
    await store._client.drop_database(name)
    await store.close()


def index_used(plan: dict[str, Any]) -> str | None:
    """The index a find's plan uses, from FerretDB's SQLite plan or MongoDB's winning plan."""
    text = " ".join(str(step) for step in plan.get("queryPlanner", {}).get("Plan", []))
    if "USING INDEX" in text:
        return text.split("USING INDEX", 1)[1].split()[0]
    if "USING PRIMARY KEY" in text or "USING INTEGER PRIMARY KEY" in text:
        return "_id_"
    winning = plan.get("queryPlanner", {}).get("winningPlan")
    stages: list[dict[str, Any]] = []
    while isinstance(winning, dict):
        stages.append(winning)
        winning = winning.get("inputStage") or winning.get("queryPlan")
    if any(s.get("stage") == "COLLSCAN" for s in stages):
        return None
    for stage in stages:
        if stage.get("stage") in ("IXSCAN", "EXPRESS_IXSCAN"):
            return str(stage.get("indexName"))
        if stage.get("stage") in ("IDHACK", "EXPRESS_CLUSTERED_IXSCAN"):
            return "_id_"
    return None


async def _plan(collection: Any, query: dict[str, Any], **options: Any) -> dict[str, Any]:
    cursor = collection.find(query)
    if "sort" in options:
        cursor = cursor.sort(options["sort"])
    if "limit" in options:
        cursor = cursor.limit(options["limit"])
    plan: dict[str, Any] = await cursor.explain()
    return plan


@pytest.mark.parametrize(
    "window",
    [
        Window(),
        Window(start=T0, end=T0 + timedelta(seconds=30)),
        Window(after=Position(T0 + timedelta(seconds=20), "c3-20:deposit")),
        Window(end=T0 + timedelta(seconds=10)),
    ],
    ids=["first-page", "from-to", "next-page", "balance-at"],
)
async def test_statement_pages_and_balance_lookups_search_the_account_index(
    reads: tuple[LedgerReads, MongoStore], window: Window
) -> None:
    _, store = reads
    plan = await _plan(store.entries, window.query("acc-3"), sort=ENTRY_ORDER, limit=51)
    assert index_used(plan) is not None and "account" in str(index_used(plan)), plan


async def test_the_entries_of_one_batch_are_found_by_the_account_index(
    reads: tuple[LedgerReads, MongoStore],
) -> None:
    _, store = reads
    plan = await _plan(store.entries, {"account_id": "acc-3", "at": T0})
    assert "account" in str(index_used(plan)), plan


@pytest.mark.parametrize(
    ("collection", "query"),
    [
        ("accounts", {"_id": "acc-3"}),
        ("transfers", {"_id": "t-1"}),
        ("inbox", {"_id": "c:cmd-1"}),
        ("accounts", {"_id": {"$in": ["acc-1", "acc-2"]}}),
    ],
    ids=["account", "transfer", "command-outcome", "owners"],
)
async def test_lookups_go_by_id(
    reads: tuple[LedgerReads, MongoStore], collection: str, query: dict[str, Any]
) -> None:
    _, store = reads
    await getattr(store, "refs" if collection == "external_refs" else collection).insert_one(
        {"_id": "seed"}
    )
    plan = await _plan(getattr(store, collection), query)
    assert index_used(plan) is not None, plan
