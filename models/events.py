"""The outcome events of contract §5: exactly one terminal outcome per command; and the
watch's alerts (§16), which answer no command."""

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from models.types import NonNegativeInt, PositiveInt


class _EventModel(BaseModel):
    """Base of outcome data: frozen, strict, no extra fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


RejectionReason = Literal[
    "invalid",
    "unsupported_type",
    "unauthenticated",
    "forbidden",
    "unsupported_currency",
    "account_exists",
    "account_not_found",
    "account_closed",
    "account_frozen",
    "currency_mismatch",
    "insufficient_funds",
    "limit_exceeded",
    "same_account",
    "duplicate_external_ref",
    "duplicate_transfer",
    "balance_not_zero",
    "invalid_state",
]


class _OfAccount(_EventModel):
    """An outcome about one account, `account_id`: the event's `subject` and Kafka key."""

    account_id: str

    @property
    def subject(self) -> str:
        return self.account_id


class AccountOpened(_OfAccount):
    TYPE: ClassVar[str] = "ledger.account.opened.v1"

    owner_id: str
    currency: str
    overdraft_limit: NonNegativeInt
    daily_outflow_limit: NonNegativeInt | None
    balance: int = 0


class Deposited(_OfAccount):
    TYPE: ClassVar[str] = "ledger.deposited.v1"

    amount: PositiveInt
    currency: str
    external_ref: str
    balance: int


class Withdrawn(_OfAccount):
    TYPE: ClassVar[str] = "ledger.withdrawn.v1"

    amount: PositiveInt
    currency: str
    external_ref: str
    balance: int


class TransferCompleted(_EventModel):
    TYPE: ClassVar[str] = "ledger.transfer.completed.v1"

    transfer_id: str
    from_account: str
    to_account: str
    amount: PositiveInt
    currency: str
    memo: str | None

    @property
    def subject(self) -> str:
        return self.from_account


class TransferFailed(_EventModel):
    TYPE: ClassVar[str] = "ledger.transfer.failed.v1"

    transfer_id: str
    from_account: str
    to_account: str
    amount: PositiveInt
    currency: str
    reason: RejectionReason

    @property
    def subject(self) -> str:
        return self.from_account


class AccountFrozen(_OfAccount):
    TYPE: ClassVar[str] = "ledger.account.frozen.v1"

    reason: str


class AccountUnfrozen(_OfAccount):
    TYPE: ClassVar[str] = "ledger.account.unfrozen.v1"


class AccountClosed(_OfAccount):
    TYPE: ClassVar[str] = "ledger.account.closed.v1"


class LimitsChanged(_OfAccount):
    TYPE: ClassVar[str] = "ledger.account.limits_changed.v1"

    overdraft_limit: NonNegativeInt
    daily_outflow_limit: NonNegativeInt | None


class ErrorItem(_EventModel):
    """One schema error of an `invalid` rejection: where (`loc`) and what (`msg`)."""

    loc: list[str | int]
    msg: str


class CommandRejected(_EventModel):
    """A rejection; it names no account, so the shell supplies the event's subject."""

    TYPE: ClassVar[str] = "ledger.command.rejected.v1"

    command_id: str
    command_type: str
    reason: RejectionReason
    detail: str
    errors: list[ErrorItem] = []


# Outcomes of accepted commands and transfer legs: each names its account (`subject`).
AccountOutcome = (
    AccountOpened
    | Deposited
    | Withdrawn
    | TransferCompleted
    | TransferFailed
    | AccountFrozen
    | AccountUnfrozen
    | AccountClosed
    | LimitsChanged
)

Outcome = AccountOutcome | CommandRejected


class VelocityExceeded(_OfAccount):
    """An account passed the velocity rule of `tally watch` (published once per window).

    `count` outflows (withdrawals, transfers out) from `first_at` to `last_at`: more than
    TALLY_WATCH_MAX_OUTFLOWS within TALLY_WATCH_WINDOW_S (`window_s`) seconds."""

    TYPE: ClassVar[str] = "ledger.risk.velocity_exceeded.v1"

    count: PositiveInt
    window_s: PositiveInt
    first_at: datetime
    last_at: datetime


EVENT_MODELS: dict[str, type[Outcome | VelocityExceeded]] = {
    model.TYPE: model
    for model in (
        AccountOpened,
        Deposited,
        Withdrawn,
        TransferCompleted,
        TransferFailed,
        AccountFrozen,
        AccountUnfrozen,
        AccountClosed,
        LimitsChanged,
        CommandRejected,
        VelocityExceeded,
    )
}
