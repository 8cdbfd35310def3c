"""`POST /v1/commands` against a running worker and API: replies, duplicates, bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.e2e.api.conftest import Api
from tests.e2e.harness import Outcomes, Tally, token

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


def _deposit(account: str, amount: int = 100) -> dict[str, Any]:
    return {"account_id": account, "amount": amount, "currency": "EUR", "external_ref": "r1"}


async def test_a_command_with_prefer_wait_gets_the_outcome_on_ledger_events_and_at_its_url(
    api: Api, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    account = new_id("acc")
    await api.open(account)
    cid = str(uuid.uuid4())
    reply = await api.command("ledger.deposit.v1", _deposit(account, 250), cid=cid, wait=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["location"] == f"/v1/commands/{cid}"
    assert reply.headers["preference-applied"] == "wait=10"
    body = reply.json()
    assert body["command_id"] == cid
    outcome = body["outcome"]
    assert outcome["type"] == "ledger.deposited.v1"
    assert outcome["data"]["balance"] == 250
    assert outcome["correlationid"] == cid and outcome["subject"] == account

    published = (await outcomes.of(cid))[cid]
    assert (published.id, published.type, published.data) == (
        outcome["id"],
        outcome["type"],
        outcome["data"],
    )
    fetched = await api.get(f"/v1/commands/{cid}")
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_without_prefer_the_command_is_accepted_and_its_outcome_appears_at_its_url(
    api: Api, new_id: Callable[[str], str]
) -> None:
    account = new_id("acc")
    await api.open(account)
    cid = str(uuid.uuid4())
    reply = await api.command("ledger.deposit.v1", _deposit(account), cid=cid, wait=None)
    assert reply.status_code == 202
    assert reply.json() == {"command_id": cid, "status": "accepted"}
    for _ in range(100):
        fetched = await api.get(reply.headers["location"])
        if fetched.status_code == 200:
            break
        assert fetched.status_code == 404
        await asyncio.sleep(0.1)
    assert fetched.json()["outcome"]["type"] == "ledger.deposited.v1"


async def test_a_duplicate_post_returns_the_first_outcome(
    api: Api, new_id: Callable[[str], str]
) -> None:
    account = new_id("acc")
    await api.open(account)
    cid = str(uuid.uuid4())
    first = await api.command("ledger.deposit.v1", _deposit(account, 100), cid=cid)
    again = await api.command("ledger.deposit.v1", _deposit(account, 999), cid=cid)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    balance = await api.get(f"/v1/accounts/{account}/balance")
    assert balance.json()["balance"] == 100


async def test_a_rejection_is_the_reply_and_a_transfer_replies_with_its_terminal_outcome(
    api: Api, new_id: Callable[[str], str]
) -> None:
    source, target = new_id("src"), new_id("dst")
    await api.open(source)
    await api.open(target)
    broke = await api.command("ledger.withdrawal.v1", _deposit(source, 5))
    assert broke.json()["outcome"]["data"]["reason"] == "insufficient_funds"
    await api.deposit(source, 100)
    data = {"transfer_id": new_id("t"), "from_account": source, "to_account": target}
    moved = await api.command("ledger.transfer.v1", data | {"amount": 40, "currency": "EUR"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["outcome"]["type"] == "ledger.transfer.completed.v1"


async def test_structured_mode_is_accepted_like_binary_mode(
    api: Api, new_id: Callable[[str], str]
) -> None:
    account = new_id("acc")
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "e2e-api",
        "type": "ledger.account.open.v1",
        "data": {"account_id": account, "owner_id": "bob", "currency": "USD"},
    }
    headers = {
        "content-type": "application/cloudevents+json",
        "authorization": f"Bearer {token()}",
        "prefer": "wait=10",
    }
    reply = await api.http.post("/v1/commands", content=orjson.dumps(event), headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["outcome"]["data"]["currency"] == "USD"


BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "c-1",
    "ce-source": "e2e",
    "ce-type": "ledger.deposit.v1",
    "content-type": "application/json",
}


@pytest.mark.parametrize(
    ("change", "body", "status", "words"),
    [
        ({}, b"{not json", 400, "undecodable"),
        ({"ce-id": None}, b"{}", 400, "missing id"),
        ({"ce-specversion": "0.3"}, b"{}", 400, "specversion"),
        ({"ce-type": "ledger.steal.v1"}, b"{}", 400, "unsupported_type"),
        ({"ce-authtoken": "x"}, b"{}", 400, "authtoken"),
        ({"content-type": "text/plain"}, b"{}", 415, "content-type"),
        ({}, b'{"memo": "' + b"x" * 70_000 + b'"}', 413, "limit"),
        ({"ce-id": "x" * 200}, b"{}", 400, "128"),
    ],
)
async def test_bad_bodies_and_headers_get_a_problem_document_never_a_500(
    api: Api, change: dict[str, str | None], body: bytes, status: int, words: str
) -> None:
    headers = {k: v for k, v in (BINARY | change).items() if v is not None}
    headers["authorization"] = f"Bearer {token()}"
    reply = await api.http.post("/v1/commands", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["status"] == status and words in problem["detail"]
    assert {"type", "title", "status", "detail"} <= set(problem)


@pytest.mark.parametrize(
    "bearer",
    [
        None,
        token(ttl=-60),
        token() + "x",
        "not-a-jwt",
    ],
    ids=["missing", "expired", "bad-signature", "malformed"],
)
async def test_a_command_without_a_valid_token_is_refused_with_401_before_kafka(
    api: Api, bearer: str | None
) -> None:
    headers = dict(BINARY)
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    reply = await api.http.post("/v1/commands", content=b"{}", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.headers["content-type"] == PROBLEM


async def test_an_api_whose_broker_is_away_answers_503_with_retry_after_and_still_reads(
    tally: Tally, tmp_path: Any, api: Api, new_id: Callable[[str], str]
) -> None:
    import httpx

    from tests.e2e.harness import Tally as Deployment

    account = new_id("acc")
    await api.open(account)
    cut_off = Deployment(run=tally.run)  # same database and topics, a broker nobody runs
    cut_off.start_api(tmp_path / "api.log", TALLY_KAFKA_BOOTSTRAP="127.0.0.1:1")
    try:
        async with httpx.AsyncClient(base_url=cut_off.api_url, timeout=30) as http:
            checks: dict[str, str] = {}
            for _ in range(200):  # until the probes have asked MongoDB once
                try:
                    ready = await http.get("/readyz")
                    checks = ready.json()["checks"]
                    if checks["mongodb"] == "ok":
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            assert ready.status_code == 503
            assert checks["mongodb"] == "ok" and checks["kafka"] != "ok"
            reply = await http.post(
                "/v1/commands",
                content=orjson.dumps(_deposit(account)),
                headers=BINARY | {"ce-id": str(uuid.uuid4()), "authorization": f"Bearer {token()}"},
            )
            assert reply.status_code == 503, reply.text
            assert reply.headers["retry-after"] == "5"
            read = await http.get(
                f"/v1/accounts/{account}", headers={"authorization": f"Bearer {token()}"}
            )
            assert read.status_code == 200 and read.json()["account_id"] == account
    finally:
        assert cut_off.stop_api() == 0
