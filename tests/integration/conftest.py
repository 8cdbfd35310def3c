"""Fixtures of the pipeline's integration tests (helpers are in kit.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from streams.settings import Settings
from tests.conftest import MONGO_URI
from tests.integration.kit import SECRET, CrashingStore


@pytest.fixture
async def crash_env() -> AsyncIterator[tuple[Settings, CrashingStore, Any]]:
    """Settings, a CrashingStore on a fresh database, and that database (dropped after)."""
    name = f"it_{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
    store = CrashingStore(client, name)
    await store.ensure_indexes()
    yield Settings(jwt_secret=SECRET, mongo_db=name), store, client[name]
    await client.drop_database(name)
    await client.close()
