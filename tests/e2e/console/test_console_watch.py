"""The console's view of `tally watch` in a real browser: the latest velocity alerts and the
volumes chart on the overview, read through `tally api` (contract §15, §16)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.e2e.console.conftest import OPERATOR, Console, Logs
from tests.e2e.harness import Outcomes, Producer, Tally, token
from tests.e2e.watching import Watch

pytestmark = pytest.mark.e2e
OPS = token(sub=OPERATOR, roles=("ops",))
PAYMENTS = token("psp", ["payments"])


@pytest.fixture(scope="module")
async def tally(logs: Logs) -> AsyncIterator[Tally]:
    """A worker, a watch (alerts past 5 outflows in 60 s) and `tally api` asking it."""
    deployment = Tally()
    deployment.start(logs.worker)
    watch = Watch(deployment, logs.folder / "watch.log", {"TALLY_WATCH_MAX_OUTFLOWS": "5"})
    try:
        await deployment.wait_ready()
        watch.start()
        deployment.start_api(logs.api, TALLY_WATCH_URL=f"http://127.0.0.1:{watch.port}")
        await watch.wait_ready()
        await deployment.wait_api_ready()
        yield deployment
    finally:
        codes = (watch.stop(), deployment.stop_api(), deployment.stop())
        await watch.cleanup()
        await deployment.cleanup()
        assert codes == (0, 0, 0), (logs.folder / "watch.log").read_text()[-3000:]


async def test_the_overview_shows_the_latest_velocity_alert_and_the_volumes_chart(
    tally: Tally,
    open_console: Callable[..., Awaitable[Console]],
    screenshots: Callable[[Page, str], Awaitable[Path]],
) -> None:
    account = f"fast-{uuid.uuid4().hex[:6]}"
    async with Producer(tally) as producer, Outcomes(tally.topics["events"]) as outcomes:
        opened = await producer.send(
            "ledger.account.open.v1", {"account_id": account, "owner_id": "o", "currency": "EUR"}
        )
        funds = {"account_id": account, "amount": 10_000, "currency": "EUR", "external_ref": "p"}
        funded = await producer.send("ledger.deposit.v1", funds, auth=PAYMENTS)
        await outcomes.of(opened, funded)
        sent = [
            await producer.send(
                "ledger.withdrawal.v1",
                {"account_id": account, "amount": 10, "currency": "EUR", "external_ref": f"w{i}"},
            )
            for i in range(8)
        ]
        await outcomes.of(*sent)

    console = await open_console()
    page = console.page
    await console.sign_in(OPS)
    alerts = page.locator("#watch-alerts")
    await expect(alerts).to_contain_text(account, timeout=30_000)
    await expect(alerts).to_contain_text("60 s")
    await expect(page.locator("#chart-volumes canvas")).to_have_count(1, timeout=15_000)
    await expect(page.locator("#chart-volumes")).to_contain_text("EUR ledger.withdrawn.v1")
    assert await console.csp_violations() == []
    await screenshots(page, "overview-watch")
