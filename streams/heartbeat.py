"""How a worker reports itself to the operator console: a heartbeat document every few seconds.

The document (`workers`, contract §15) names the process, its consumer group, the partitions it
holds and its readiness checks. The console shows a worker whose heartbeat is recent as live,
and an older one as gone: a worker killed with `kill -9` says nothing, its heartbeat just ages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from streams import __version__
from streams.health import Health
from streams.ports import Store

log = logging.getLogger("tally.heartbeat")
EVERY_S = 5.0
FORGET_AFTER = timedelta(days=1)  # heartbeats of processes long gone are removed at start


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(
    worker: str, group: str, http_port: int, health: Health, partitions: Iterable[Any]
) -> dict[str, Any]:
    """The document: `partitions` are the consumer's TopicPartitions."""
    host, _, pid = worker.rpartition(":")
    report = health.report()
    return {
        "_id": worker,
        "host": host,
        "pid": int(pid) if pid.isdigit() else None,
        "http_port": http_port,
        "group": group,
        "partitions": sorted(
            ({"topic": tp.topic, "partition": tp.partition} for tp in partitions),
            key=lambda p: (p["topic"], p["partition"]),
        ),
        "ready": health.ready,
        "checks": report["checks"],
        "version": __version__,
        "at": datetime.now(UTC),
    }


async def beat_forever(store: Store, describe: Callable[[], dict[str, Any]]) -> None:
    """Until cancelled: the worker's heartbeat, every EVERY_S seconds. A failed write (the
    database away) is only logged: readiness already says so, the next beat tries again."""
    try:
        await store.forget_workers(datetime.now(UTC) - FORGET_AFTER)
    except Exception as exc:
        log.warning("old heartbeats not removed", extra={"error": repr(exc)[:200]})
    while True:
        try:
            async with asyncio.timeout(EVERY_S):
                await store.beat(describe())
        except Exception as exc:
            log.warning("heartbeat not written", extra={"error": repr(exc)[:200]})
        await asyncio.sleep(EVERY_S)
