"""The operator console in a real browser (Debian's headless Chromium, driven by Playwright),
against a running worker and `tally api`: what an operator sees, and what they may not.

The tests of this module share one deployment and run in order: the last one restarts the
worker (the fix of a dead letter's cause) and replays from the console."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.async_api import Page, expect

from tests.e2e.console.conftest import OPERATOR, PHONE, Console, Logs, command
from tests.e2e.harness import Producer, Tally, token

pytestmark = pytest.mark.e2e
OpenConsole = Callable[..., Awaitable[Console]]
Shot = Callable[[Page, str], Awaitable[Path]]
PADDING = [("x-padding", b"p" * 700)]  # over the worker's 1000 bytes: dead-lettered too_large
OPS = token(sub=OPERATOR, roles=("ops",))


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.5)


async def number(page: Page, selector: str) -> int:
    return int(await page.locator(selector).inner_text())


async def test_a_customer_token_is_refused_by_the_api_and_the_page_says_so(
    open_console: OpenConsole, screenshots: Shot
) -> None:
    console = await open_console()
    customer = token(sub="alice", roles=("customer",))
    await console.sign_in(customer)
    alert = console.page.get_by_role("alert")
    await expect(alert).to_contain_text("Refused: 403 Forbidden", timeout=15_000)
    await expect(alert).to_contain_text("ops role")
    await expect(console.page.get_by_label("Operator token")).to_be_visible()  # asks again
    refused = [r for r in console.responses if "/v1/ops/" in r.url or "/console/views/" in r.url]
    assert refused and {r.status for r in refused} == {403}, [(r.url, r.status) for r in refused]
    assert await console.page.locator("#workers").count() == 0  # no data reached the page
    assert customer not in await console.page.content()
    assert await console.csp_violations() == []
    await screenshots(console.page, "refused")


async def test_the_overview_shows_the_worker_and_a_throughput_that_rises_after_commands(
    tally: Tally, open_console: OpenConsole, http: httpx.AsyncClient, screenshots: Shot
) -> None:
    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    assert tally.process is not None
    row = page.locator("#workers tbody tr", has_text=f":{tally.process.pid}")
    await expect(row).to_contain_text("live", timeout=20_000)
    await expect(row).to_contain_text("ready")
    await expect(row).to_contain_text(f"{tally.topics['commands']}/0")
    before = await number(page, "#accepted-last-minute")

    run = uuid.uuid4().hex[:6]
    for i in range(12):
        data = {"account_id": f"tp-{run}-{i}", "owner_id": "o", "currency": "EUR"}
        await command(http, "ledger.account.open.v1", data)
    await command(
        http,
        "ledger.deposit.v1",
        {"account_id": "nobody", "amount": 1, "currency": "EUR", "external_ref": run},
    )

    async def risen() -> bool:
        return await number(page, "#accepted-last-minute") >= before + 12

    await until(risen, "the accepted count of the last minute rises by 12")
    assert await number(page, "#rejected-last-minute") >= 1
    await asyncio.sleep(2.5)  # one more poll, so the charts hold the commands too
    # The chart draws the same series (uPlot, on a canvas), fed from /v1/ops/series.
    await expect(page.locator("#chart-throughput canvas")).to_have_count(1)
    series = [r for r in console.responses if "/v1/ops/series" in r.url and r.status == 200]
    latest = orjson.loads(await series[-1].body())
    assert sum(latest["throughput"]["accepted"]) >= 12
    await expect(page.locator("#chart-lag canvas")).to_have_count(1, timeout=15_000)
    await expect(page.locator("#overview")).to_contain_text(f"{tally.topics['commands']}/0")
    assert await console.csp_violations() == []
    await screenshots(page, "overview")

    phone = await open_console(PHONE)
    await phone.sign_in(OPS)
    await expect(phone.page.locator("#workers")).to_contain_text("live", timeout=20_000)
    await expect(phone.page.locator("#chart-throughput canvas")).to_have_count(1)
    overflow = "document.documentElement.scrollWidth - window.innerWidth"
    assert await phone.page.evaluate(overflow) <= 0, "the page scrolls sideways on a phone"
    await screenshots(phone.page, "overview-phone")


async def show_dead_letters(console: Console, reason: str, expected: str) -> None:
    """Choose a reason, and ask again until `expected` is listed (the API re-reads the topic
    at most every few seconds)."""
    page = console.page
    await console.tab("Dead letters")
    await page.get_by_label("Reason", exact=True).select_option(reason)

    async def listed() -> bool:
        await page.get_by_role("button", name="Show dead letters").click()
        await page.wait_for_load_state("networkidle")
        return expected in await page.locator("#dead-letters").inner_text()

    await until(listed, f"{expected} listed under {reason}")


async def test_a_poison_record_appears_under_dead_letters_with_its_reason_and_no_token(
    tally: Tally, producer: Producer, open_console: OpenConsole, screenshots: Shot
) -> None:
    key = f"poison-{uuid.uuid4().hex[:6]}"
    await producer.raw(b'{"truncated json', key=key.encode())
    sender = token(sub="psp-sender", roles=("payments",))
    padded = f"padded-{uuid.uuid4().hex[:6]}"
    data = {"account_id": padded, "amount": 5, "currency": "EUR", "external_ref": padded}
    await producer.send("ledger.deposit.v1", data, auth=sender, extra_headers=PADDING)

    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    await expect(page.locator("#dead-letter-counts")).to_contain_text("undecodable", timeout=20_000)
    await show_dead_letters(console, "undecodable", key)
    letter = page.locator("#dead-letter-list tbody.letter", has_text=key)
    await expect(letter.locator("td.reason")).to_have_text("undecodable")
    await expect(letter).to_contain_text("value is not JSON")
    await letter.locator("summary").click()
    await expect(letter.locator("pre.value")).to_have_text('{"truncated json')

    # The token a dead letter carries is masked: in the page, and in all the API sent it.
    await show_dead_letters(console, "too_large", padded)
    carrying = page.locator("#dead-letter-list tbody.letter", has_text=padded)
    await carrying.locator("summary").click()
    await expect(carrying.locator("dl.headers")).to_contain_text("ce_authtoken")
    await expect(carrying.locator("dl.headers")).to_contain_text("«masked»")
    assert sender not in await page.content()
    bodies = await console.bodies()
    assert any(padded in body for body in bodies)
    for secret in (sender, sender.split(".")[1], OPS):
        assert not any(secret in body for body in bodies), "a token reached the browser"
    assert await console.csp_violations() == []
    await show_dead_letters(console, "", padded)
    await page.locator("#dead-letter-list tbody.letter", has_text=padded).locator("summary").click()
    await screenshots(page, "dead-letters")


async def test_an_account_look_up_pages_through_its_statement(
    http: httpx.AsyncClient, open_console: OpenConsole, screenshots: Shot
) -> None:
    account = f"stmt-{uuid.uuid4().hex[:6]}"
    await command(
        http, "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
    )
    for i in range(23):
        data = {
            "account_id": account,
            "amount": 100 + i,
            "currency": "EUR",
            "external_ref": f"{account}-{i}",
        }
        await command(http, "ledger.deposit.v1", data)

    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    await console.tab("Look-ups")
    await page.get_by_label("Account id").fill(account)
    await page.get_by_role("button", name="Look up account").click()
    await expect(page.locator("#account-balance")).to_contain_text(str(sum(range(100, 123))))
    await expect(page.locator("#account-status")).to_have_text("open")
    await screenshots(page, "account")

    seen: list[str] = []
    for expected_rows in (10, 10, 3):
        rows = page.locator("#statement tbody tr")
        await expect(rows).to_have_count(expected_rows)
        shown = await rows.locator("td:nth-child(5)").all_inner_texts()
        seen += shown
        if expected_rows == 10:
            await page.get_by_role("button", name="Next page").click()
            await expect(rows.first.locator("td:nth-child(5)")).not_to_have_text(shown[0])
    await expect(page.locator("#statement-end")).to_be_visible()
    assert len(seen) == len(set(seen)) == 23  # every entry once, none skipped
    assert seen[0] == f"{account}-22" and seen[-1] == f"{account}-0"  # newest first


async def test_a_transfer_look_up_shows_its_state_and_both_legs(
    http: httpx.AsyncClient, open_console: OpenConsole, screenshots: Shot
) -> None:
    run = uuid.uuid4().hex[:6]
    payer, payee, transfer = f"payer-{run}", f"payee-{run}", f"t-{run}"
    for account in (payer, payee):
        await command(
            http,
            "ledger.account.open.v1",
            {"account_id": account, "owner_id": "o", "currency": "EUR"},
        )
    await command(
        http,
        "ledger.deposit.v1",
        {"account_id": payer, "amount": 900, "currency": "EUR", "external_ref": run},
    )
    moved = {
        "transfer_id": transfer,
        "from_account": payer,
        "to_account": payee,
        "amount": 400,
        "currency": "EUR",
    }
    cid = str(uuid.uuid4())
    outcome = await command(http, "ledger.transfer.v1", moved, cid=cid)
    assert outcome["type"] == "ledger.transfer.completed.v1"

    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    await console.tab("Look-ups")
    await page.get_by_label("Transfer id").fill(transfer)
    await page.get_by_role("button", name="Look up transfer").click()
    await expect(page.locator("#transfer-state")).to_have_text("completed")
    legs = page.locator("#legs tbody tr")
    await expect(legs).to_have_count(2)
    await expect(legs.filter(has_text=payer)).to_contain_text("transfer_out")
    await expect(legs.filter(has_text=payee)).to_contain_text("transfer_in")
    await screenshots(page, "transfer")
    await page.get_by_label("Command id").fill(cid)
    await page.get_by_role("button", name="Look up command").click()
    await expect(page.locator("#command-outcome")).to_have_text("ledger.transfer.completed.v1")


async def test_replaying_a_dead_letter_whose_cause_was_fixed_produces_its_outcome(
    tally: Tally,
    producer: Producer,
    http: httpx.AsyncClient,
    open_console: OpenConsole,
    logs: Logs,
    screenshots: Shot,
) -> None:
    account = f"replay-{uuid.uuid4().hex[:6]}"
    await command(
        http, "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
    )
    data = {"account_id": account, "amount": 700, "currency": "EUR", "external_ref": account}
    deposit = await producer.send("ledger.deposit.v1", data, extra_headers=PADDING)

    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    await show_dead_letters(console, "too_large", account)
    position = await page.locator("#dead-letter-list tbody.letter", has_text=account).get_attribute(
        "data-position"
    )
    assert position is not None and re.fullmatch(r"\d+:\d+", position)

    # The cause goes away: the worker runs again with the default size limit.
    assert tally.stop() == 0
    tally.start(logs.worker)
    await tally.wait_ready()

    dialogs: list[str] = []

    async def confirm(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.once("dialog", confirm)
    await page.get_by_role("button", name=f"Replay dead letter {position}").click()
    await expect(page.get_by_role("status")).to_have_text("Replayed 1 dead letter.", timeout=30_000)
    assert dialogs and position in dialogs[0]

    await console.tab("Look-ups")
    await page.get_by_label("Command id").fill(deposit)

    async def decided() -> bool:
        await page.get_by_role("button", name="Look up command").click()
        await page.wait_for_load_state("networkidle")
        return await page.locator("#command-outcome").count() > 0

    await until(decided, "the replayed deposit's outcome")
    await expect(page.locator("#command-outcome")).to_have_text("ledger.deposited.v1")
    await page.get_by_label("Account id").fill(account)
    await page.get_by_role("button", name="Look up account").click()
    await expect(page.locator("#account-balance")).to_contain_text("700")
    await screenshots(page, "replayed")

    replays = [
        orjson.loads(line)
        for line in logs.api.read_text().splitlines()
        if '"dead letters replayed"' in line
    ]
    assert replays and replays[-1]["operator"] == OPERATOR and replays[-1]["sent"] == 1
    assert OPS not in logs.api.read_text() and OPS not in logs.worker.read_text()
