"""How long the inbox remembers a decision: TALLY_IDEMPOTENCY_DAYS (contract §14).

The database removes old inbox records with a TTL index where it can. FerretDB cannot, so
there the worker deletes them itself: a bounded batch at a time, a few times per window."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from streams.ports import Store

log = logging.getLogger("tally.retention")
SWEEP_LIMIT = 5000  # records deleted per round; more rounds follow at once while some are left
LONGEST_PAUSE = timedelta(hours=1)


async def keep_inbox(store: Store, window: timedelta) -> None:
    """Until cancelled: a TTL index, or else a sweep every min(window / 4, 1 h)."""
    while True:
        try:
            ttl = await store.expire_inbox(max(1, int(window.total_seconds())))
            break
        except Exception as exc:  # the database away at start-up: ask again
            log.warning("inbox TTL index not made yet", extra={"error": repr(exc)[:200]})
            await asyncio.sleep(5.0)
    if ttl:
        log.info("inbox records expire by a TTL index", extra={"days": window / timedelta(days=1)})
        return
    pause = min(window / 4, LONGEST_PAUSE).total_seconds()
    log.info("the server has no TTL indexes: the worker sweeps the inbox", extra={"every_s": pause})
    while True:
        await asyncio.sleep(pause)
        try:
            await sweep(store, datetime.now(UTC) - window)
        except Exception as exc:  # an outage: the next round tries again
            log.warning("inbox sweep failed", extra={"error": repr(exc)[:200]})


async def sweep(store: Store, before: datetime) -> int:
    """Delete every inbox record decided before `before`, SWEEP_LIMIT at a time."""
    total = 0
    while (gone := await store.sweep_inbox(before, SWEEP_LIMIT)) > 0:
        total += gone
        if gone < SWEEP_LIMIT:
            break
    if total:
        log.info("inbox swept", extra={"removed": total})
    return total
