"""The store port: what the pipeline needs of a database, as MongoStore and InMemoryStore do it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from streams.writes import AccountWrite, Effects

Doc = dict[str, Any]
Collection = Literal["accounts", "entries", "transfers", "inbox", "external_refs", "workers"]


class Store(Protocol):
    """Tally's collections (contract §9 plus `inbox` and `external_refs`), every access by `_id`.

    The contract both adapters honour (tests/integration/test_store_contract.py): an insert of
    an existing `_id` changes nothing (first write wins); one account write is atomic and
    version-checked; every write here is safe to repeat."""

    async def ensure_indexes(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

    async def find_by_ids(self, collection: Collection, ids: Iterable[str]) -> dict[str, Doc]:
        """The documents with these `_id`s that exist, by `_id`."""
        ...

    async def put_inbox(self, records: Sequence[Doc]) -> list[str]:
        """Insert inbox records; returns the ids that already had one (theirs stays)."""
        ...

    async def complete_commands(self, outcomes: Sequence[Doc]) -> None:
        """Put a saga's terminal outcome on its transfer command's inbox record."""
        ...

    async def expire_inbox(self, seconds: int) -> bool:
        """Let the database remove inbox records `seconds` after their `at`; False if it
        cannot (then Tally sweeps them with sweep_inbox)."""
        ...

    async def sweep_inbox(self, before: datetime, limit: int) -> int:
        """Remove up to `limit` inbox records decided before `before`; how many went."""
        ...

    async def write_accounts(self, writes: Sequence[AccountWrite]) -> None:
        """One atomic write per account, version-checked: ConflictError if any account changed
        since it was loaded, or a new one exists already (the others are written)."""
        ...

    async def write_effects(self, effects: Effects) -> None:
        """Journal entries, transfers and external refs: inserts (first wins) and settlements."""
        ...

    async def beat(self, worker: Doc) -> None:
        """Put a worker's heartbeat document (`workers`, by its `_id`), replacing its last."""
        ...

    async def workers(self, since: datetime) -> list[Doc]:
        """The heartbeats written at or after `since` (their `at`), by `_id`."""
        ...

    async def forget_workers(self, before: datetime) -> int:
        """Remove heartbeats older than `before`; how many went."""
        ...
