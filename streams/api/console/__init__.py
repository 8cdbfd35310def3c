"""The operator console of `tally api` (contract §15, ADR 10): a page, its views, `/v1/ops`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams.api.console import live, ops, pages, watch
from streams.api.console.letters import DeadLetters
from streams.settings import Settings

STATIC = Path(__file__).with_name("static")
# No inline script or style, nothing from another origin, no framing (contract §15).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_DATA = ("/v1/", "/console/views/")  # answers with ledger data: never kept by a cache


@dataclass(slots=True)
class Console:
    """What the console keeps in the API process: its charts' series and the dead letters."""

    settings: Settings
    throughput: live.Throughput = field(default_factory=live.Throughput)
    lag: live.Lag = field(default_factory=live.Lag)
    letters: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self.letters = DeadLetters(self.settings)


def install(app: FastAPI) -> None:
    """Add the console to the API app: routes, static assets, the headers of every answer."""
    app.state.console = Console(app.state.settings)
    # The router's lifespan runs inside the app's, once the API's clients exist.
    routes = APIRouter(lifespan=live.lifespan)
    routes.include_router(ops.router)
    routes.include_router(pages.router)
    routes.include_router(pages.views)
    routes.include_router(watch.router)
    routes.include_router(watch.views)
    app.include_router(routes)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_middleware(SecurityHeaders)


class SecurityHeaders:
    """Adds the CSP and its companions to every response of `tally api` (a plain ASGI
    middleware), and `Cache-Control: no-store` to those that carry ledger data."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        private = scope["path"].startswith(_DATA)

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self._app(scope, receive, sent)
