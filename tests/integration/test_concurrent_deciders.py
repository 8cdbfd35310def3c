"""Two workers deciding the same records at once (a revoked owner whose batch outlived the
revocation wait) should publish each outcome byte-identical, as a republication is."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt
import pytest

from streams.pipeline import Pipeline
from tests.integration.kit import SECRET, CrashingStore, Recorder, command, pipeline

pytestmark = pytest.mark.integration


class OvertakenStore(CrashingStore):
    """Lets another worker process the whole batch between this worker's load and write."""

    other: Pipeline | None = None
    records: list[Any] = []

    async def put_inbox(self, records: Sequence[dict[str, Any]]) -> list[str]:
        if self.other is not None:
            other, self.other = self.other, None
            await other.process(self.records, time.time())
        return await super().put_inbox(records)


async def test_an_outcome_decided_twice_at_once_is_published_in_one_version(
    crash_env: Any,
) -> None:
    settings, store, db = crash_env
    token = jwt.encode({"sub": "psp", "roles": ["payments"], "exp": 1}, SECRET)  # expired
    data = {"account_id": "a", "amount": 5, "currency": "EUR", "external_ref": "r"}
    records = [command(0, "ledger.deposit.v1", data, cid="dep-1", token=token)]
    publisher = Recorder()
    zombie_store = OvertakenStore(db.client, db.name)
    zombie_store.records = records
    zombie_store.other = pipeline(settings, store, publisher)
    await pipeline(settings, zombie_store, publisher).process(records, time.time())

    versions = {
        (m.value, tuple(sorted(m.headers))) for m in publisher.sent if m.topic == "ledger.events"
    }
    assert len(versions) == 1
