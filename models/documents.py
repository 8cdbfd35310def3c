"""Stored documents (SPEC §9) and the internal transfer leg message."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.events import RejectionReason
from models.types import Day, NonNegativeInt, PositiveInt

# `id` is stored as MongoDB's `_id`; dumps use the alias so they are the document as stored.
_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    strict=True,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
)

AccountStatus = Literal["open", "frozen", "closed"]
EntryKind = Literal["deposit", "withdrawal", "transfer_out", "transfer_in", "refund"]
TransferState = Literal["debited", "completed", "failed"]
LegKind = Literal["credit", "refund"]


class Account(BaseModel):
    model_config = _CONFIG

    id: str = Field(alias="_id")
    owner_id: str
    currency: str
    status: AccountStatus
    balance: int
    overdraft_limit: NonNegativeInt
    daily_outflow_limit: NonNegativeInt | None
    created_at: datetime
    updated_at: datetime
    # Outflows (withdrawals, transfers out) on `outflow_day` (UTC), for the daily limit.
    outflow_day: Day | None = None
    outflow_total: NonNegativeInt = 0
    # Incremented by every decision; the shell's optimistic-concurrency check.
    version: NonNegativeInt = 0


class Entry(BaseModel):
    """One journal posting; never updated. `id` is `f"{command_id}:{kind}"`."""

    model_config = _CONFIG

    id: str = Field(alias="_id")
    account_id: str
    amount: int
    balance_after: int
    command_id: str
    kind: EntryKind
    transfer_id: str | None = None
    external_ref: str | None = None
    at: datetime


class TransferRecord(BaseModel):
    model_config = _CONFIG

    id: str = Field(alias="_id")
    from_account: str
    to_account: str
    amount: PositiveInt
    currency: str
    state: TransferState
    command_id: str
    memo: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class TransferLeg(BaseModel):
    """A message on `ledger.transfers`: credit the destination, or refund the source."""

    model_config = _CONFIG

    leg: LegKind
    command_id: str
    transfer_id: str
    from_account: str
    to_account: str
    amount: PositiveInt
    currency: str
    memo: str | None = None
    reason: RejectionReason | None = None
    traceparent: str | None = None

    @property
    def message_id(self) -> str:
        return f"{self.command_id}:{self.leg}"

    @property
    def account_key(self) -> str:
        return self.to_account if self.leg == "credit" else self.from_account
