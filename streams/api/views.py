"""What `tally api` answers with: the contract §9 documents as clients see them (`_id` named).

The models give the OpenAPI document its schemas; the routes build the same shapes from
documents directly (`account_view` & co.), so a read costs no second validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from models.documents import AccountStatus, EntryKind, TransferState

Doc = dict[str, Any]


class AccountView(BaseModel):
    account_id: str
    owner_id: str
    currency: str
    status: AccountStatus
    balance: int
    overdraft_limit: int
    daily_outflow_limit: int | None
    created_at: datetime
    updated_at: datetime


class EntryView(BaseModel):
    account_id: str
    amount: int
    balance_after: int
    command_id: str
    kind: EntryKind
    transfer_id: str | None = None
    external_ref: str | None = None
    at: datetime


class EntriesPage(BaseModel):
    items: list[EntryView]
    next_cursor: str | None


class BalanceView(BaseModel):
    account_id: str
    balance: int
    at: datetime


class TransferView(BaseModel):
    transfer_id: str
    from_account: str
    to_account: str
    amount: int
    currency: str
    state: TransferState
    memo: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class OutcomeEvent(BaseModel):
    """A terminal outcome (contract §5) as a structured-mode CloudEvent."""

    specversion: Literal["1.0"]
    id: str
    source: str
    type: str
    time: str
    subject: str | None
    datacontenttype: Literal["application/json"]
    correlationid: str
    causationid: str | None = None
    traceparent: str | None = None
    data: dict[str, Any]


class CommandStatus(BaseModel):
    command_id: str
    outcome: OutcomeEvent


class CommandAccepted(BaseModel):
    command_id: str
    status: Literal["accepted"]


_ACCOUNT = tuple(f for f in AccountView.model_fields if f != "account_id")
_ENTRY = tuple(EntryView.model_fields)
_TRANSFER = tuple(f for f in TransferView.model_fields if f != "transfer_id")


def account_view(doc: Doc) -> Doc:
    return {"account_id": doc["_id"], **{f: doc.get(f) for f in _ACCOUNT}}


def entry_view(doc: Doc) -> Doc:
    return {f: doc.get(f) for f in _ENTRY}


def transfer_view(doc: Doc) -> Doc:
    return {"transfer_id": doc["_id"], **{f: doc.get(f) for f in _TRANSFER}}
