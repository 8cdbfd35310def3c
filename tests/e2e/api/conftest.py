"""A worker and `tally api` beside it, shared by the tests of a module; an HTTP client for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Tally, token, worker_and_api


class Api:
    """`tally api` as a client sees it: commands in binary mode, reads with a bearer token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def command(
        self,
        ctype: str,
        data: dict[str, Any],
        *,
        bearer: str | None = None,
        cid: str | None = None,
        wait: int | None = 10,
    ) -> httpx.Response:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": cid or str(uuid.uuid4()),
            "ce-source": "e2e-api",
            "ce-type": ctype,
            "content-type": "application/json",
            "authorization": f"Bearer {bearer or token()}",
        }
        if wait is not None:
            headers["prefer"] = f"wait={wait}"
        return await self.http.post("/v1/commands", json=data, headers=headers)

    async def get(self, path: str, bearer: str | None = None, **params: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {bearer or token()}"}
        return await self.http.get(path, headers=headers, params=params or None)

    async def open(self, account: str, owner: str = "alice", currency: str = "EUR") -> None:
        data = {"account_id": account, "owner_id": owner, "currency": currency}
        reply = await self.command("ledger.account.open.v1", data)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outcome"]["type"] == "ledger.account.opened.v1"

    async def deposit(self, account: str, amount: int, ref: str | None = None) -> dict[str, Any]:
        data = {"account_id": account, "amount": amount, "currency": "EUR"}
        data["external_ref"] = ref or uuid.uuid4().hex
        reply = await self.command("ledger.deposit.v1", data)
        assert reply.status_code == 200, reply.text
        outcome: dict[str, Any] = reply.json()["outcome"]
        return outcome


@pytest.fixture(scope="module")
async def tally(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tally]:
    async with worker_and_api(tmp_path_factory.mktemp("api")) as deployment:
        yield deployment


@pytest.fixture(scope="module")
async def api(tally: Tally) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=tally.api_url, timeout=60) as http:
        yield Api(http)
