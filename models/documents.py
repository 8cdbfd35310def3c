"""Stored documents (contract §9) and the internal transfer leg message."""

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.events import RejectionReason
from models.ids import leg_message_id
from models.types import Day, NonNegativeInt, PositiveInt


class _Document(BaseModel):
    """Base of documents; `id` is stored as `_id` and dumped by alias."""

    model_config = ConfigDict(
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


class Account(_Document):
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


class Entry(_Document):
    """One journal posting; never updated. `id` is `f"{command_id}:{kind}"`."""

    id: str = Field(alias="_id")
    account_id: str
    amount: int
    balance_after: int
    command_id: str
    kind: EntryKind
    transfer_id: str | None = None
    external_ref: str | None = None
    at: datetime


class TransferRecord(_Document):
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


class TransferLeg(_Document):
    """A message on `ledger.transfers`: credit the destination, or refund the source."""

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

    @model_validator(mode="after")
    def _refund_has_reason(self) -> Self:
        # A refund is only ever caused by a refused credit; its reason is the failed outcome's.
        if (self.leg == "refund") != (self.reason is not None):
            raise ValueError("a refund leg, and only a refund leg, carries a reason")
        return self

    @property
    def message_id(self) -> str:
        return leg_message_id(self.command_id, self.leg)

    @property
    def account_key(self) -> str:
        return self.to_account if self.leg == "credit" else self.from_account
