"""The read routes against a running worker and API: who sees what, statements, balances."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jwt
import pytest

from tests.e2e.api.conftest import Api
from tests.e2e.harness import SECRET, token

pytestmark = pytest.mark.e2e

ALICE = token("alice", ["customer"])
BOB = token("bob", ["customer"])
PAYMENTS = token("psp", ["payments"])
OPS = token("ops-1", ["ops"])
RISK = token("watch", ["risk"])


@pytest.fixture(scope="module")
async def ledger(api: Api) -> dict[str, str]:
    """Alice's account with money, Bob's, and a transfer from Alice to Bob."""
    run = uuid.uuid4().hex[:6]
    ids = {"alice": f"alice-{run}", "bob": f"bob-{run}", "transfer": f"t-{run}"}
    await api.open(ids["alice"], owner="alice")
    await api.open(ids["bob"], owner="bob")
    await api.deposit(ids["alice"], 1000)
    data = {"transfer_id": ids["transfer"], "from_account": ids["alice"], "to_account": ids["bob"]}
    moved = await api.command("ledger.transfer.v1", data | {"amount": 300, "currency": "EUR"})
    assert moved.json()["outcome"]["type"] == "ledger.transfer.completed.v1"
    ids["command"] = moved.json()["command_id"]
    return ids


def _routes(ids: dict[str, str], owner: str) -> list[str]:
    account = ids[owner]
    return [
        f"/v1/accounts/{account}",
        f"/v1/accounts/{account}/entries",
        f"/v1/accounts/{account}/balance",
    ]


@pytest.mark.parametrize(
    ("bearer", "owner", "status"),
    [
        (ALICE, "alice", 200),
        (BOB, "alice", 404),
        (PAYMENTS, "alice", 200),
        (OPS, "bob", 200),
        (RISK, "alice", 404),
    ],
    ids=["customer-own", "customer-other", "payments", "ops", "risk"],
)
async def test_who_may_read_an_account(
    api: Api, ledger: dict[str, str], bearer: str, owner: str, status: int
) -> None:
    for route in _routes(ledger, owner):
        reply = await api.get(route, bearer)
        assert reply.status_code == status, (route, reply.text)


async def test_a_missing_account_and_another_customers_account_look_the_same(
    api: Api, ledger: dict[str, str]
) -> None:
    other = await api.get(f"/v1/accounts/{ledger['bob']}", ALICE)
    missing = await api.get(f"/v1/accounts/nobody-{uuid.uuid4().hex}", ALICE)
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    assert other.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "bearer",
    [
        None,
        token(ttl=-60),
        token() + "x",
        "a.b.c",
        jwt.encode({"sub": "x", "roles": "ops", "exp": time.time() + 60}, SECRET),
    ],
    ids=["missing", "expired", "bad-signature", "malformed", "roles-not-a-list"],
)
async def test_reads_without_a_valid_token_get_401_with_a_bearer_challenge(
    api: Api, ledger: dict[str, str], bearer: str | None
) -> None:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    for route in [*_routes(ledger, "alice"), f"/v1/transfers/{ledger['transfer']}"]:
        reply = await api.http.get(route, headers=headers)
        assert reply.status_code == 401, (route, reply.text)
        assert reply.headers["www-authenticate"] == "Bearer"


async def test_an_account_reads_as_its_contract_fields(api: Api, ledger: dict[str, str]) -> None:
    body = (await api.get(f"/v1/accounts/{ledger['alice']}", ALICE)).json()
    assert body["account_id"] == ledger["alice"]
    assert body["balance"] == 700 and body["status"] == "open" and body["owner_id"] == "alice"
    assert {
        "currency",
        "overdraft_limit",
        "daily_outflow_limit",
        "created_at",
        "updated_at",
    } <= set(body)
    assert "outbox" not in body and "version" not in body


async def test_a_transfer_is_visible_to_both_owners_and_hidden_from_others(
    api: Api, ledger: dict[str, str]
) -> None:
    route = f"/v1/transfers/{ledger['transfer']}"
    for bearer in (ALICE, BOB, OPS, PAYMENTS):
        reply = await api.get(route, bearer)
        assert reply.status_code == 200
        assert reply.json()["state"] == "completed" and reply.json()["amount"] == 300
    stranger = token("carol", ["customer"])
    assert (await api.get(route, stranger)).status_code == 404
    assert (await api.get("/v1/transfers/never-made", OPS)).status_code == 404


async def test_a_command_status_is_visible_to_the_owner_of_its_subject(
    api: Api, ledger: dict[str, str]
) -> None:
    route = f"/v1/commands/{ledger['command']}"
    assert (await api.get(route, ALICE)).status_code == 200
    assert (await api.get(route, BOB)).status_code == 404  # subject is Alice's account
    assert (await api.get(f"/v1/commands/{uuid.uuid4()}", OPS)).status_code == 404


async def test_a_statement_walk_never_repeats_or_skips_while_entries_arrive(
    api: Api, db: Any, new_id: Callable[[str], str]
) -> None:
    account = new_id("busy")
    await api.open(account)
    for _ in range(12):
        await api.deposit(account, 1)
    before = {e["_id"] async for e in db.entries.find({"account_id": account})}

    async def keep_depositing() -> None:
        for _ in range(10):
            await api.deposit(account, 1)

    arriving = asyncio.create_task(keep_depositing())
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get(f"/v1/accounts/{account}/entries", **params)).json()
        seen += [f"{e['command_id']}:{e['kind']}" for e in page["items"]]
        times = [datetime.fromisoformat(e["at"]) for e in page["items"]]
        assert times == sorted(times, reverse=True)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        await asyncio.sleep(0.05)
    await arriving
    assert pages >= 4
    assert len(seen) == len(set(seen)), "an entry was shown twice"
    assert before <= set(seen), "an entry that existed when the walk began was skipped"


async def test_a_statement_window_and_the_balance_at_a_time_agree_with_the_journal(
    api: Api, db: Any, new_id: Callable[[str], str]
) -> None:
    account = new_id("hist")
    await api.open(account)
    for amount in (100, 20, 3):
        await api.deposit(account, amount)
        await asyncio.sleep(0.02)
    withdrawal = {"account_id": account, "amount": 50, "currency": "EUR", "external_ref": "w"}
    assert (await api.command("ledger.withdrawal.v1", withdrawal)).status_code == 200
    journal = [e async for e in db.entries.find({"account_id": account}).sort("at", 1)]
    assert len(journal) == 4
    for i, entry in enumerate(journal):
        at = entry["at"].isoformat()
        reply = (await api.get(f"/v1/accounts/{account}/balance", at=at)).json()
        assert reply["balance"] == sum(e["amount"] for e in journal[: i + 1])
    early = (await api.get(f"/v1/accounts/{account}/balance", at="2000-01-01T00:00:00Z")).json()
    assert early["balance"] == 0
    now = (await api.get(f"/v1/accounts/{account}/balance")).json()
    assert now["balance"] == 73
    window = {"from": journal[1]["at"].isoformat(), "to": journal[2]["at"].isoformat()}
    page = (await api.get(f"/v1/accounts/{account}/entries", **window)).json()
    assert [e["amount"] for e in page["items"]] == [3, 20]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"cursor": "bogus!"}, {"from": "yesterday"}],
)
async def test_bad_statement_parameters_are_a_400_problem(
    api: Api, ledger: dict[str, str], params: dict[str, Any]
) -> None:
    reply = await api.get(f"/v1/accounts/{ledger['alice']}/entries", **params)
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"] == "application/problem+json"


async def test_the_api_serves_its_openapi_document_health_and_metrics(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert {
        "/v1/accounts/{account_id}",
        "/v1/accounts/{account_id}/entries",
        "/v1/accounts/{account_id}/balance",
        "/v1/transfers/{transfer_id}",
        "/v1/commands/{command_id}",
        "/v1/commands",
    } <= set(document["paths"])
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    assert (await api.http.get("/readyz")).status_code == 200
    metrics = (await api.http.get("/metrics")).text
    assert 'tally_api_requests_total{method="GET",route="/openapi.json",status="200"}' in metrics
    assert "tally_api_request_seconds_bucket" in metrics
