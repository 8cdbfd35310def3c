"""`GET /console` and the HTML fragments its views load (htmx), rendered by Jinja2, escaped.

The page itself holds no data; every fragment is a call with the operator's bearer token and
the `ops` role, like the `/v1/ops` routes whose data it shows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from streams.api.console import ops
from streams.api.console.letters import Filter
from streams.api.problems import not_found
from streams.api.queries import LedgerReads, Window
from streams.api.reads import cursor_position, next_cursor, visible_account
from streams.api.replies import event_json
from streams.api.security import Operator
from streams.api.views import account_view, entry_view, transfer_view
from streams.store import timed

STATEMENT_PAGE = 10
REASONS = ("undecodable", "invalid_envelope", "too_large", "untrusted_leg", "processing_error")
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
router = APIRouter()
views = APIRouter(prefix="/console/views", include_in_schema=False)
Id = Annotated[str, Query(min_length=1, max_length=256)]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["when"] = _when


def _page(request: Request, name: str, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context)


@router.get("/console", response_class=HTMLResponse, tags=["operations"])
async def console(request: Request) -> Response:
    """The operator console (contract §15): the page asks for an `ops` token and keeps it in
    the tab's sessionStorage; it holds no data itself."""
    return _page(request, "console.html", reasons=REASONS)


@views.get("/overview")
async def overview(request: Request, _: Operator) -> Response:
    return _page(request, "overview.html", o=await ops.overview(request.app.state))


@views.get("/dead-letters")
async def dead_letters(
    request: Request,
    _: Operator,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Response:
    selected = Filter(reason or None, ops.utc(since), ops.utc(until))
    page = await ops.dead_letters(request.app.state, selected, limit=200)
    return _page(request, "dead_letters.html", page=page, selected=selected)


@views.get("/account")
async def account(
    request: Request,
    principal: Operator,
    account_id: Id,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    found = await visible_account(request, principal, account_id)
    reads: LedgerReads = request.app.state.reads
    window = Window(after=cursor_position(cursor))
    items, more = await reads.entries(found, window, STATEMENT_PAGE)
    return _page(
        request,
        "account.html",
        account=account_view(found),
        entries=[entry_view(e) for e in items],
        next_cursor=next_cursor(items, more),
        first=cursor is None,
    )


@views.get("/transfer")
async def transfer(request: Request, _: Operator, transfer_id: Id) -> Response:
    state = request.app.state
    found = await state.reads.transfer(transfer_id)
    if found is None:
        raise not_found("transfer")
    # Both legs (and a refund) carry the transfer command's id: one walk of an index.
    async with timed("console_legs"):
        legs = await state.store.entries.find({"command_id": found["command_id"]}).to_list()
    legs.sort(key=lambda e: (e["at"], e["_id"]))
    return _page(
        request,
        "transfer.html",
        transfer=transfer_view(found),
        legs=[entry_view(e) for e in legs],
    )


@views.get("/command")
async def command(request: Request, _: Operator, command_id: Id) -> Response:
    outcome = await request.app.state.reads.outcome(command_id)
    if outcome is None:
        raise not_found("command outcome")
    return _page(request, "command.html", command_id=command_id, outcome=event_json(outcome))
