"""A worker and `tally api`, Debian's Chromium driven headless by Playwright, and the console's
screenshots (also written to docs/console/ when TALLY_CONSOLE_SCREENSHOTS names that folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, async_playwright

from tests.e2e.harness import Tally, token, worker_and_api

ROOT = Path(__file__).parents[3]
SMALL = "1000"  # the worker's TALLY_MAX_MESSAGE_BYTES: a padded command is dead-lettered
OPERATOR = "ops-console-e2e"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Collected by the page itself: every Content-Security-Policy violation it meets.
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def chromium() -> str:
    """Debian's Chromium, installed by the project's own set-up when missing (as root)."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["bash", str(ROOT / "deploy/local/tools.sh"), "chromium"], check=True)
        found = shutil.which("chromium")
    assert found is not None, "Debian's chromium is needed: bash deploy/local/tools.sh chromium"
    binary = Path("/usr/lib/chromium/chromium")  # the browser itself, not Debian's wrapper
    return str(binary) if binary.exists() else found


@dataclass
class Logs:
    folder: Path

    @property
    def api(self) -> Path:
        return self.folder / "api.log"

    @property
    def worker(self) -> Path:
        return self.folder / "worker.log"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    return Logs(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
async def tally(logs: Logs) -> AsyncIterator[Tally]:
    async with worker_and_api(logs.folder, TALLY_MAX_MESSAGE_BYTES=SMALL) as deployment:
        yield deployment


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), headless=True)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def http(tally: Tally) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=tally.api_url, timeout=60) as client:
        yield client


@dataclass
class Console:
    """One browser tab on `GET /console`, and everything the API answered it."""

    page: Page
    responses: list[Response] = field(default_factory=list)

    async def sign_in(self, bearer: str) -> None:
        await self.page.get_by_label("Operator token").fill(bearer)
        await self.page.get_by_role("button", name="Use token").click()

    async def tab(self, name: str) -> None:
        await self.page.get_by_role("tab", name=name).click()

    async def csp_violations(self) -> list[str]:
        found: list[str] = await self.page.evaluate("window.__csp")
        return found

    async def bodies(self) -> list[str]:
        """Every answer of the API to this tab, as text (pages, fragments, JSON, assets)."""
        texts = []
        for response in self.responses:
            try:
                texts.append((await response.body()).decode("utf-8", "replace"))
            except Exception:  # a redirect or an aborted poll has no body
                continue
        return texts


@pytest.fixture
async def open_console(
    browser: Browser, tally: Tally
) -> AsyncIterator[Callable[..., Awaitable[Console]]]:
    contexts = []

    async def opened(viewport: dict[str, int] = DESKTOP) -> Console:
        context = await browser.new_context(viewport=viewport)
        contexts.append(context)
        page = await context.new_page()
        await page.add_init_script(CSP_WATCH)
        console = Console(page)
        page.on("response", lambda response: console.responses.append(response))
        await page.goto(f"{tally.api_url}/console")
        return console

    yield opened
    for context in contexts:
        await context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Awaitable[Path]]:
    """Saves a screenshot to the test's folder, and to $TALLY_CONSOLE_SCREENSHOTS if set."""
    folder = tmp_path_factory.mktemp("screenshots")
    chosen = os.environ.get("TALLY_CONSOLE_SCREENSHOTS")
    published = (ROOT / chosen) if chosen else None

    async def shot(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True, animations="disabled")
        if published is not None:
            published.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, published / path.name)
        return path

    return shot


async def command(
    http: httpx.AsyncClient, ctype: str, data: dict[str, Any], cid: str | None = None
) -> dict[str, Any]:
    """A command through `tally api`, waiting for its outcome."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": cid or str(uuid.uuid4()),
        "ce-source": "e2e-console",
        "ce-type": ctype,
        "authorization": f"Bearer {token()}",
        "prefer": "wait=20",
    }
    reply = await http.post("/v1/commands", json=data, headers=headers)
    assert reply.status_code == 200, reply.text
    outcome: dict[str, Any] = reply.json()["outcome"]
    return outcome
