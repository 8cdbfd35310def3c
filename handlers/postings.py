"""Applying a decision to an account: new state, journal postings."""

from typing import Any

from handlers.decision import Context
from handlers.rules import outflow_on
from models.documents import Account, Entry, EntryKind


def touched(account: Account, ctx: Context, **changes: Any) -> Account:
    """The account after a decision: every decision bumps `version` (optimistic locking)."""
    update = {**changes, "version": account.version + 1, "updated_at": ctx.now}
    return account.model_copy(update=update)


def post(
    account: Account,
    amount: int,
    kind: EntryKind,
    ctx: Context,
    *,
    transfer_id: str | None = None,
    external_ref: str | None = None,
) -> tuple[Account, Entry]:
    """Post signed `amount` (debits < 0) to `account`: its new state and the journal entry."""
    balance = account.balance + amount
    changes: dict[str, Any] = {"balance": balance}
    if amount < 0:  # outflows count towards the daily limit of the record's UTC day
        changes |= {"outflow_day": ctx.day, "outflow_total": outflow_on(account, ctx.day) - amount}
    entry = Entry(
        id=f"{ctx.command_id}:{kind}",
        account_id=account.id,
        amount=amount,
        balance_after=balance,
        command_id=ctx.command_id,
        kind=kind,
        transfer_id=transfer_id,
        external_ref=external_ref,
        at=ctx.now,
    )
    return touched(account, ctx, **changes), entry
