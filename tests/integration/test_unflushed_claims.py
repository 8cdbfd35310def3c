"""An external_ref or transfer_id claimed by a decision a crash left unflushed stays claimed."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from streams.publish import Message
from tests.integration.kit import CrashError, Recorder, deposit, opens, pipeline, transfer

pytestmark = pytest.mark.integration


def reasons(messages: list[Message]) -> dict[str, str]:
    found = {}
    for m in messages:
        headers = dict(m.headers)
        if m.topic == "ledger.events":
            data = orjson.loads(m.value or b"{}")
            found[headers["ce_correlationid"].decode()] = data.get("reason", "accepted")
    return found


async def test_a_reused_external_ref_or_transfer_id_is_refused_after_a_crash(
    crash_env: Any,
) -> None:
    settings, store, db = crash_env
    publisher = Recorder()
    await pipeline(settings, store, publisher).process(opens("a"), time.time())
    first = [deposit(1, "psp-1", cid="dep-1"), transfer(2, "t1", cid="tr-1")]
    # kill -9 between the account write and the effects: outboxes written, journal and claims not
    store.crash_at = "accounts"
    with pytest.raises(CrashError):
        await pipeline(settings, store, publisher).process(first, time.time())
    # The new owner gets the uncommitted records again, followed by the reuses.
    again = [*first, deposit(3, "psp-1", cid="dep-2"), transfer(4, "t1", cid="tr-2")]
    await pipeline(settings, store, publisher).process(again, time.time())

    verdicts = reasons(publisher.sent)
    assert verdicts["dep-1"] == "accepted"
    assert verdicts["dep-2"] == "duplicate_external_ref"
    assert verdicts["tr-2"] == "duplicate_transfer"
    account = await db.accounts.find_one({"_id": "a"})
    assert account is not None
    assert account["balance"] == 90  # one deposit of 100, one transfer of 10 in flight
