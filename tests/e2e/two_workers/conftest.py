"""Two workers of one deployment, one partition each: transfers between their accounts go
through ledger.transfers (a worker owning both partitions settles them in its batch, ADR 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.harness import Reader, Tally, two_workers

PARTITIONS = 2


@pytest.fixture(scope="module")
async def tally(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    """Overrides the e2e deployment of one worker."""
    async with two_workers(tmp_path_factory.mktemp("workers"), PARTITIONS) as deployment:
        yield deployment


@pytest.fixture(scope="module")
async def legs(tally: Tally) -> AsyncIterator[Reader]:
    """The deployment's ledger.transfers, from the beginning."""
    async with Reader(tally.topics["transfers"]) as reader:
        yield reader
