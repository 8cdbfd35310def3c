"""A worker that verifies tokens with a JWKS endpoint: keys rotate without a restart, and an
endpoint that does not answer pauses the worker instead of refusing the commands (contract §6, §8.5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.e2e.harness import Outcomes, Producer, Tally
from tests.integration.test_jwks import JwksServer, signed

pytestmark = pytest.mark.e2e

REFRESH_S = 1.0
LEG_SECRET = "e2e-leg-secret-that-is-32-characters-or-more"


@pytest.fixture(scope="module")
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer("a")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def tally(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    """This module's worker knows no secret: JWKS keys only (overrides conftest's `tally`)."""
    deployment = Tally()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    deployment.start(
        log,
        TALLY_JWT_SECRET="",
        TALLY_JWT_JWKS_URL=jwks.url,
        TALLY_JWT_JWKS_REFRESH=str(REFRESH_S),
        TALLY_LEG_SECRET=LEG_SECRET,
    )
    try:
        await deployment.wait_ready()
        yield deployment
    finally:
        code = deployment.stop()
        await deployment.cleanup()
        assert code == 0, Path(log).read_text()[-3000:]


async def open_account(producer: Producer, account: str, kid: str) -> str:
    data = {"account_id": account, "owner_id": f"owner-{account}", "currency": "EUR"}
    return await producer.send("ledger.account.open.v1", data, auth=signed(kid, sub="ops-1"))


async def opened(outcomes: Outcomes, command_id: str, timeout: float = 60) -> None:
    found = (await outcomes.of(command_id, timeout=timeout))[command_id]
    assert found.type == "ledger.account.opened.v1", found.data


async def readiness(tally: Tally, until: Callable[[int, Any], bool], timeout: float = 60) -> Any:
    """Poll /readyz until `until(status, body)` holds; returns the body."""
    deadline = time.monotonic() + timeout
    async with ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{tally.port}/readyz") as response:
                body = await response.json()
                if until(response.status, body):
                    return body
            assert time.monotonic() < deadline, f"readiness never matched; last: {body}"
            await asyncio.sleep(0.3)


def past_the_refresh_interval() -> Any:
    # The worker fetches again for an unknown kid only once its last fetch is this old.
    return asyncio.sleep(REFRESH_S * 1.5)


async def test_keys_rotate_and_an_unreachable_endpoint_pauses_the_worker(
    tally: Tally, jwks: JwksServer, producer: Producer, outcomes: Outcomes, new_id: Any
) -> None:
    await opened(outcomes, await open_account(producer, new_id("a"), "a"))

    jwks.kids = ["b"]  # the provider rotates its key; the worker keeps running
    await past_the_refresh_interval()
    await opened(outcomes, await open_account(producer, new_id("b"), "b"))

    await jwks.stop()
    await past_the_refresh_interval()
    fetches = jwks.requests
    command_id = await open_account(producer, new_id("c"), "c")  # a key the worker never saw
    body = await readiness(tally, lambda status, _: status == 503)
    assert "JwksUnavailableError" in body["checks"]["pipeline"], body
    with pytest.raises(TimeoutError):  # paused: neither accepted nor `unauthenticated`
        await outcomes.of(command_id, timeout=3)

    jwks.kids = ["b", "c"]
    await jwks.start()
    await opened(outcomes, command_id)
    assert jwks.requests > fetches
    await readiness(tally, lambda status, _: status == 200)
