"""`tally watch` on the real broker, beside a real worker (contract §16): one alert per window,
the freeze it sends, nothing below the threshold, volumes that match the commands sent, and a
`kill -9` that neither loses a count nor alerts twice for one window."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tests.e2e.harness import SECRET, Outcomes, Producer, Reader, Tally, outcome, token
from tests.e2e.watching import ALERT, Watch, alerts_of

pytestmark = pytest.mark.e2e

# Currencies of their own keep each test's volumes apart from the others'.
CURRENCIES = "EUR,XBA,XBB,XVA,XKA"
WATCH = {
    "TALLY_WATCH_MAX_OUTFLOWS": "5",
    "TALLY_WATCH_WINDOW_S": "30",
    "TALLY_WATCH_FREEZE": "true",
}
PAYMENTS = token("psp", ["payments"])


async def _deployment(
    logs: Path, watch_settings: dict[str, str], api: bool = False
) -> AsyncIterator[Watch]:
    tally = Tally()
    tally.start(logs / "worker.log", TALLY_CURRENCIES=CURRENCIES)
    watch = Watch(tally, logs / "watch.log", {"TALLY_CURRENCIES": CURRENCIES, **watch_settings})
    try:
        await tally.wait_ready()
        watch.start()
        if api:
            tally.start_api(logs / "api.log", TALLY_WATCH_URL=f"http://127.0.0.1:{watch.port}")
            await tally.wait_api_ready()
        await watch.wait_ready()
        yield watch
    finally:
        codes = (watch.stop() if watch.process else 0, tally.stop())
        api_code = tally.stop_api() if tally.api else 0
        await watch.cleanup()
        await tally.cleanup()
        assert codes == (0, 0), (logs / "watch.log").read_text()[-3000:]
        assert api_code == 0, (logs / "api.log").read_text()[-3000:]


@pytest.fixture(scope="module")
async def watched(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Watch]:
    """A worker and a watch that alerts past 5 outflows in 30 s, and freezes."""
    async for watch in _deployment(tmp_path_factory.mktemp("watch"), WATCH, api=True):
        yield watch


@pytest.fixture(scope="module")
async def producer(watched: Watch) -> AsyncIterator[Producer]:
    async with Producer(watched.tally) as p:
        yield p


@pytest.fixture(scope="module")
async def outcomes(watched: Watch) -> AsyncIterator[Outcomes]:
    async with Outcomes(watched.tally.topics["events"]) as reader:
        yield reader


@pytest.fixture
def new_id() -> Callable[[str], str]:
    run = uuid.uuid4().hex[:6]
    return lambda name: f"{name}-{run}"


async def open_funded(
    producer: Producer, outcomes: Outcomes, account: str, currency: str, amount: int = 100_000
) -> None:
    opened = await producer.send(
        "ledger.account.open.v1", {"account_id": account, "owner_id": account, "currency": currency}
    )
    deposit = {"account_id": account, "amount": amount, "currency": currency, "external_ref": "p"}
    funded = await producer.send("ledger.deposit.v1", deposit, auth=PAYMENTS)
    found = await outcomes.of(opened, funded)
    assert [found[c].type for c in (opened, funded)] == [
        "ledger.account.opened.v1",
        "ledger.deposited.v1",
    ]


async def withdraw(
    producer: Producer, account: str, currency: str, count: int, first: int = 0
) -> list[str]:
    return [
        await producer.send(
            "ledger.withdrawal.v1",
            {"account_id": account, "amount": 100, "currency": currency, "external_ref": f"w{i}"},
        )
        for i in range(first, first + count)
    ]


async def counted(
    watch: Watch, currency: str, event_type: str, count: int, timeout: float = 30
) -> int:
    """Wait until the watch's volumes show `count` events of this currency and type."""
    deadline = time.monotonic() + timeout
    while True:
        found = sum(
            row["count"]
            for row in await watch.volumes()
            if (row["currency"], row["type"]) == (currency, event_type)
        )
        if found >= count:
            return found
        assert time.monotonic() < deadline, f"{currency} {event_type}: {found} of {count} counted"
        await asyncio.sleep(0.2)


def show(title: str, record: Any) -> None:
    """Print a record of ledger.events as it is on the topic (the closing note quotes it)."""
    headers = {name: value.decode() for name, value in record.headers}
    print(f"\n{title}: key={record.key.decode()} offset={record.partition}:{record.offset}")
    for name, value in headers.items():
        shown = value if name != "ce_authtoken" else value[:24] + "…"
        print(f"  {name}: {shown}")
    print(f"  value: {record.value.decode()}")


async def test_a_burst_over_the_threshold_alerts_once_and_freezes_the_account(
    watched: Watch, producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    account = new_id("burst")
    await open_funded(producer, outcomes, account, "XBA")
    sent = await withdraw(producer, account, "XBA", 12)
    await outcomes.of(*sent)
    frozen = await outcomes.until(
        lambda records: (
            {ALERT, "ledger.account.frozen.v1"}
            <= {outcome(r).type for r in records if outcome(r).subject == account}
        )
    )
    withdrawn = sum(1 for c in sent if outcomes.by_command()[c][0].type == "ledger.withdrawn.v1")
    await counted(watched, "XBA", "ledger.withdrawn.v1", withdrawn)
    late = (await withdraw(producer, account, "XBA", 1, first=12))[0]
    assert (await outcomes.of(late))[late].data["reason"] == "account_frozen"
    records = await outcomes.to_end()

    alerts = alerts_of(records, account)
    assert len(alerts) == 1, alerts
    headers, data = alerts[0]
    assert data["account_id"] == account
    assert (data["count"], data["window_s"]) == (6, 30)
    assert data["first_at"] <= data["last_at"]
    assert headers["ce_correlationid"] == headers["ce_id"]
    assert headers["ce_source"] == "tally/watch"
    freezes = [
        r
        for r in frozen
        if outcome(r).subject == account and outcome(r).type == "ledger.account.frozen.v1"
    ]
    assert len(freezes) == 1
    assert outcome(freezes[0]).data == {"account_id": account, "reason": "velocity"}
    alert_record = next(r for r in records if outcome(r).id == headers["ce_id"])
    assert alert_record.offset < freezes[0].offset  # the alert is published before its freeze
    show("alert", alert_record)
    show("freeze outcome", freezes[0])


async def test_the_freeze_command_is_signed_as_the_watch_with_the_risk_role(
    watched: Watch, producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    account = new_id("signed")
    await open_funded(producer, outcomes, account, "XBA")
    await outcomes.of(*await withdraw(producer, account, "XBA", 6))
    frozen = await outcomes.until(
        lambda records: any(
            outcome(r).subject == account and outcome(r).type == "ledger.account.frozen.v1"
            for r in records
        )
    )
    freeze_id = next(
        outcome(r).correlationid
        for r in frozen
        if outcome(r).subject == account and outcome(r).type == "ledger.account.frozen.v1"
    )
    async with Reader(watched.tally.topics["commands"]) as commands:
        found = await commands.until(
            lambda records: any(dict(r.headers).get("ce_id") == freeze_id.encode() for r in records)
        )
    command = next(r for r in found if dict(r.headers).get("ce_id") == freeze_id.encode())
    headers = {name: value.decode() for name, value in command.headers}
    claims = jwt.decode(headers["ce_authtoken"], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["roles"]) == ("tally-watch", ["risk"])
    assert headers["ce_type"] == "ledger.account.freeze.v1" and command.key == account.encode()
    assert orjson.loads(command.value) == {"account_id": account, "reason": "velocity"}
    show("freeze command", command)


async def test_below_the_threshold_nothing_is_published(
    watched: Watch, producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    account = new_id("calm")
    await open_funded(producer, outcomes, account, "XBB")
    await outcomes.of(*await withdraw(producer, account, "XBB", 5))
    await counted(watched, "XBB", "ledger.withdrawn.v1", 5)
    records = await outcomes.to_end()
    assert alerts_of(records, account) == []
    assert [
        o for o in (await watched.get("/v1/alerts"))["alerts"] if o["account_id"] == account
    ] == []
    assert not any(
        outcome(r).subject == account and outcome(r).type == "ledger.account.frozen.v1"
        for r in records
    )


async def test_volumes_match_the_commands_sent(
    watched: Watch, producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    payer, payee = new_id("payer"), new_id("payee")
    await open_funded(producer, outcomes, payer, "XVA", 3_000)
    await open_funded(producer, outcomes, payee, "XVA", 500)
    sent = await withdraw(producer, payer, "XVA", 2)
    for transfer_id, target, amount in (("t-ok", payee, 250), ("t-lost", new_id("nobody"), 10)):
        transfer = {"transfer_id": new_id(transfer_id), "from_account": payer, "to_account": target}
        sent.append(
            await producer.send(
                "ledger.transfer.v1", transfer | {"amount": amount, "currency": "XVA"}
            )
        )
    broke = {"account_id": payee, "amount": 10**9, "currency": "XVA", "external_ref": "big"}
    sent.append(await producer.send("ledger.withdrawal.v1", broke))  # rejected: no currency counted
    found = await outcomes.of(*sent)
    assert [found[c].type for c in sent] == [
        "ledger.withdrawn.v1",
        "ledger.withdrawn.v1",
        "ledger.transfer.completed.v1",
        "ledger.transfer.failed.v1",
        "ledger.command.rejected.v1",
    ]
    expected = {
        "ledger.account.opened.v1": (2, 0),
        "ledger.deposited.v1": (2, 3_500),
        "ledger.withdrawn.v1": (2, 200),
        "ledger.transfer.completed.v1": (1, 250),
        "ledger.transfer.failed.v1": (1, 10),
    }
    await counted(watched, "XVA", "ledger.transfer.failed.v1", 1)
    totals: dict[str, tuple[int, int]] = {}
    for row in await watched.volumes(minutes=5):
        if row["currency"] == "XVA":
            count, amount = totals.get(row["type"], (0, 0))
            totals[row["type"]] = (count + row["count"], amount + row["amount"])
    assert totals == expected


async def test_the_api_shows_the_console_the_watch_s_alerts_and_volumes(
    watched: Watch, producer: Producer, outcomes: Outcomes, new_id: Callable[[str], str]
) -> None:
    account = new_id("shown")
    await open_funded(producer, outcomes, account, "XBB")
    await outcomes.of(*await withdraw(producer, account, "XBB", 6))
    ops = {"authorization": f"Bearer {token('ops-console', ['ops'])}"}
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=watched.tally.api_url, headers=ops) as http:
        while True:
            body = (await http.get("/v1/ops/watch", params={"minutes": 5})).json()
            if any(a["account_id"] == account for a in body["alerts"] or []):
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.3)
        card = await http.get("/console/views/watch")
    assert body["error"] is None and body["url"] == f"http://127.0.0.1:{watched.port}"
    assert any(v["currency"] == "XBB" and v["count"] > 0 for v in body["volumes"])
    assert card.status_code == 200 and account in card.text


@pytest.fixture
async def watched_without_freeze(tmp_path: Path) -> AsyncIterator[Watch]:
    settings = WATCH | {"TALLY_WATCH_WINDOW_S": "120", "TALLY_WATCH_FREEZE": "false"}
    async for watch in _deployment(tmp_path, settings):
        yield watch


async def test_kill_9_and_restart_neither_lose_a_count_nor_alert_twice_for_a_window(
    watched_without_freeze: Watch, new_id: Callable[[str], str]
) -> None:
    watch = watched_without_freeze
    account = new_id("restart")
    async with Producer(watch.tally) as producer, Outcomes(watch.tally.topics["events"]) as seen:
        await open_funded(producer, seen, account, "XKA")
        first = await withdraw(producer, account, "XKA", 3)
        first_outcome = (await seen.of(*first))[first[0]]
        await counted(watch, "XKA", "ledger.withdrawn.v1", 3)

        watch.kill()  # three outflows counted, perhaps not yet written: must not be lost
        watch.start()
        await seen.of(*await withdraw(producer, account, "XKA", 3, first=3))
        await watch.wait_ready()
        records = await seen.until(lambda records: bool(alerts_of(records, account)), timeout=60)
        (headers, data), *_ = alerts_of(records, account)
        assert data["count"] == 6
        assert data["first_at"] == first_outcome.headers["ce_time"]

        watch.kill()  # the alert published, its window still open
        watch.start()
        await seen.of(*await withdraw(producer, account, "XKA", 3, first=6))
        await watch.wait_ready()
        await counted(watch, "XKA", "ledger.withdrawn.v1", 9, timeout=60)
        alerts = alerts_of(await seen.to_end(), account)
        assert {h["ce_id"] for h, _ in alerts} == {headers["ce_id"]}
        assert all(d == data for _, d in alerts)
        print(f"\n{len(alerts)} alert record(s) for the window, one id: {headers['ce_id']}")
