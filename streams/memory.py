"""InMemoryStore: the store port kept in dicts, for tests of the pipeline without a database."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from models.ids import command_inbox_id
from streams.ports import Collection
from streams.store import ConflictError
from streams.writes import AccountWrite, Effects

Doc = dict[str, Any]


class InMemoryStore:
    """Honours the contract of streams.ports.Store as MongoStore does (the same suite runs
    against both): first write wins, one account write atomic and version-checked, documents
    read back as copies with datetimes at BSON's millisecond precision."""

    def __init__(self) -> None:
        self.collections: dict[Collection, dict[str, Doc]] = {
            name: {} for name in get_args(Collection)
        }

    async def ensure_indexes(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def find_by_ids(self, collection: Collection, ids: Iterable[str]) -> dict[str, Doc]:
        documents = self.collections[collection]
        return {i: _stored(documents[i]) for i in dict.fromkeys(ids) if i in documents}

    async def put_inbox(self, records: Sequence[Doc]) -> list[str]:
        return self._insert_all("inbox", records)

    async def complete_commands(self, outcomes: Sequence[Doc]) -> None:
        inbox = self.collections["inbox"]
        for outcome in outcomes:
            key = command_inbox_id(outcome["correlationid"])
            record = inbox.setdefault(key, {"_id": key, "at": datetime.now(UTC)})
            record["outcome"] = _stored(outcome)

    async def expire_inbox(self, seconds: int) -> bool:
        return False  # no TTL here: the sweep does it

    async def sweep_inbox(self, before: datetime, limit: int) -> int:
        inbox = self.collections["inbox"]
        old = [k for k, doc in inbox.items() if doc.get("at") and doc["at"] < before][:limit]
        for key in old:
            del inbox[key]
        return len(old)

    async def write_accounts(self, writes: Sequence[AccountWrite]) -> None:
        accounts = self.collections["accounts"]
        conflicts = 0
        for write in writes:
            key = write.document["_id"]
            stored = accounts.get(key)
            if write.loaded_version is None:
                if stored is not None:
                    conflicts += 1
                    continue
                accounts[key] = _stored({**write.document, "version": 1, "outbox": write.outbox})
            elif stored is None or stored["version"] != write.loaded_version:
                conflicts += 1
            else:
                fields = {k: v for k, v in write.document.items() if k != "_id"}
                fields |= {"version": write.loaded_version + 1, "outbox": write.outbox}
                stored.update(_stored(fields))
        if conflicts:
            raise ConflictError(f"{conflicts} account write(s) conflicted")

    async def write_effects(self, effects: Effects) -> None:
        self._insert_all("entries", effects.entries)
        self._insert_all("external_refs", effects.refs)
        existed = set(self._insert_all("transfers", effects.new_transfers))
        settled = [u for u in effects.settle_if_present if u["_id"] in existed]
        transfers = self.collections["transfers"]
        for update in [*effects.transfer_updates, *settled]:
            stored = transfers.get(update["_id"])
            if stored is not None and stored.get("command_id") == update["command_id"]:
                stored.update(_stored(update["set"]))

    async def beat(self, worker: Doc) -> None:
        self.collections["workers"][worker["_id"]] = _stored(worker)

    async def workers(self, since: datetime) -> list[Doc]:
        found, since = self.collections["workers"].values(), _stored(since)
        return sorted((_stored(w) for w in found if w["at"] >= since), key=lambda w: w["_id"])

    async def forget_workers(self, before: datetime) -> int:
        workers = self.collections["workers"]
        old = [key for key, doc in workers.items() if doc["at"] < _stored(before)]
        for key in old:
            del workers[key]
        return len(old)

    def _insert_all(self, collection: Collection, docs: Sequence[Doc]) -> list[str]:
        documents, existed = self.collections[collection], []
        for doc in docs:
            if doc["_id"] in documents:
                existed.append(doc["_id"])
            else:
                documents[doc["_id"]] = _stored(doc)
        return existed


def _stored(value: Any) -> Any:
    """A copy as the database would give it back: datetimes to the millisecond (BSON's)."""
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(v) for v in value]
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return copy.copy(value)
