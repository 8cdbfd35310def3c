"""The values handlers take and return: context, facts, decisions and rejections."""

from dataclasses import dataclass
from datetime import datetime

from models.documents import Account, Entry, TransferLeg, TransferRecord
from models.events import AccountOutcome, ErrorItem, RejectionReason


@dataclass(frozen=True, slots=True)
class Context:
    """What the shell knows about the message being decided; handlers never read a clock."""

    command_id: str
    message_id: str
    now: datetime
    day: str  # UTC YYYY-MM-DD of the record's Kafka timestamp (contract §4 daily limit)
    currencies: frozenset[str]
    traceparent: str | None = None  # copied onto transfer legs for tracing


@dataclass(frozen=True, slots=True)
class Facts:
    """State the shell loaded for one message: the account it acts on, and lookups."""

    account: Account | None
    external_ref_used: bool = False
    transfer_id_used: bool = False
    # The stored transfer, for legs: lets completed/failed keep its `created_at`.
    transfer: TransferRecord | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """An accepted command or leg: the one account's new state and what to write and send."""

    account: Account | None
    entries: tuple[Entry, ...] = ()
    outcome: AccountOutcome | None = None
    leg: TransferLeg | None = None
    transfer: TransferRecord | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused command; the shell turns it into `ledger.command.rejected.v1`."""

    reason: RejectionReason
    detail: str
    errors: tuple[ErrorItem, ...] = ()
