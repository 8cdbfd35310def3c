"""Readiness probes: MongoDB and Kafka asked every second, each answer a `/readyz` check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from streams.health import Health


async def probe_forever(health: Health, store: Any, admin: Any) -> None:
    """Until cancelled: `mongodb` from a ping, `kafka` from describing the cluster."""
    while True:
        await _probe(health, "mongodb", store.ping())
        await _probe(health, "kafka", admin.describe_cluster())
        await asyncio.sleep(1.0)


async def _probe(health: Health, name: str, check: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(2.0):
            await check
        health.set(name, None)
    except Exception as exc:
        health.set(name, f"{type(exc).__name__}: {exc}"[:200] or "unreachable")
