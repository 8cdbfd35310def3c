"""The read routes of contract §13: accounts, statements, balances, transfers, command status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from handlers.auth import Principal
from handlers.permissions import may_read, reads_every_account
from streams.api.problems import Problem, ProblemError, not_found
from streams.api.queries import BadCursorError, LedgerReads, Position, Window
from streams.api.replies import event_json
from streams.api.security import Actor
from streams.api.views import (
    AccountView,
    BalanceView,
    CommandStatus,
    EntriesPage,
    TransferView,
    account_view,
    entry_view,
    transfer_view,
)

Doc = dict[str, Any]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 401, 404, 503)
}
router = APIRouter(prefix="/v1", responses=_ERRORS)


def json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_UTC_Z), status, headers, "application/json"
    )


def _reads(request: Request) -> LedgerReads:
    reads: LedgerReads = request.app.state.reads
    return reads


async def visible_account(request: Request, principal: Principal, account_id: str) -> Doc:
    """The account if it exists and the principal may read it; else 404, either way."""
    account = await _reads(request).account(account_id)
    if account is None or not may_read(principal, [account.get("owner_id", "")]):
        raise not_found("account")
    return account


def cursor_position(cursor: str | None) -> Position | None:
    """Where a statement page starts: after the cursor's entry; 400 for a cursor not ours."""
    try:
        return Position.decode(cursor) if cursor else None
    except BadCursorError as exc:
        raise ProblemError(400, str(exc)) from None


def next_cursor(items: list[Doc], more: bool) -> str | None:
    """The cursor of the page after `items`, if more entries follow."""
    return Position(items[-1]["at"], items[-1]["_id"]).encode() if more else None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # RFC 3339 wants an offset; none given means UTC
    return moment


@router.get("/accounts/{account_id}", response_model=AccountView)
async def get_account(request: Request, account_id: str, principal: Actor) -> Response:
    return json(account_view(await visible_account(request, principal, account_id)))


@router.get("/accounts/{account_id}/entries", response_model=EntriesPage)
async def get_entries(
    request: Request,
    account_id: str,
    principal: Actor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> Response:
    account = await visible_account(request, principal, account_id)
    window = Window(start=_utc(start), end=_utc(end), after=cursor_position(cursor))
    items, more = await _reads(request).entries(account, window, limit)
    return json({"items": [entry_view(e) for e in items], "next_cursor": next_cursor(items, more)})


@router.get("/accounts/{account_id}/balance", response_model=BalanceView)
async def get_balance(
    request: Request,
    account_id: str,
    principal: Actor,
    at: Annotated[datetime | None, Query()] = None,
) -> Response:
    account = await visible_account(request, principal, account_id)
    moment = _utc(at) or datetime.now(UTC)
    balance = await _reads(request).balance_at(account, moment)
    return json({"account_id": account_id, "balance": balance, "at": moment})


@router.get("/transfers/{transfer_id}", response_model=TransferView)
async def get_transfer(request: Request, transfer_id: str, principal: Actor) -> Response:
    reads = _reads(request)
    transfer = await reads.transfer(transfer_id)
    if transfer is None:
        raise not_found("transfer")
    if not reads_every_account(principal):
        owners = await reads.owners([transfer["from_account"], transfer["to_account"]])
        if not may_read(principal, owners.values()):
            raise not_found("transfer")
    return json(transfer_view(transfer))


@router.get("/commands/{command_id}", response_model=CommandStatus)
async def get_command(request: Request, command_id: str, principal: Actor) -> Response:
    reads = _reads(request)
    outcome = await reads.outcome(command_id)
    if outcome is None:
        raise not_found("command outcome")
    await _check_subject(reads, principal, outcome)
    return json({"command_id": command_id, "outcome": event_json(outcome)})


async def _check_subject(reads: LedgerReads, principal: Principal, outcome: Doc) -> None:
    """A customer sees the outcome of a command on an account they own."""
    if reads_every_account(principal):
        return
    subject = outcome.get("subject")
    owners = await reads.owners([subject]) if isinstance(subject, str) else {}
    if not may_read(principal, owners.values()):
        raise not_found("command outcome")
