"""Deposits and withdrawals."""

from handlers.decision import Context, Decision, Facts, Rejection
from handlers.postings import post
from handlers.rules import (
    first,
    new_external_ref,
    not_closed,
    not_found,
    outflow_allowed,
    same_currency,
)
from models.commands import Deposit, Withdrawal
from models.documents import Account
from models.events import Deposited, Withdrawn


def _movable(cmd: Deposit | Withdrawal, facts: Facts) -> Account | Rejection:
    """The rules deposits and withdrawals share, in contract §4 order."""
    account = facts.account
    if account is None:
        return not_found(cmd.account_id)
    rejection = first(
        not_closed(account),
        same_currency(account, cmd.currency),
        new_external_ref(facts.external_ref_used, cmd.external_ref),
    )
    return account if rejection is None else rejection


def handle_deposit(cmd: Deposit, facts: Facts, ctx: Context) -> Decision | Rejection:
    # Frozen accounts accept inflows (contract §4).
    account = _movable(cmd, facts)
    if isinstance(account, Rejection):
        return account
    account, entry = post(account, cmd.amount, "deposit", ctx, external_ref=cmd.external_ref)
    fields = cmd.model_dump()
    return Decision(account, (entry,), outcome=Deposited(**fields, balance=account.balance))


def handle_withdrawal(cmd: Withdrawal, facts: Facts, ctx: Context) -> Decision | Rejection:
    account = _movable(cmd, facts)
    if isinstance(account, Rejection):
        return account
    if rejection := outflow_allowed(account, cmd.currency, cmd.amount, ctx.day):
        return rejection
    account, entry = post(account, -cmd.amount, "withdrawal", ctx, external_ref=cmd.external_ref)
    fields = cmd.model_dump()
    return Decision(account, (entry,), outcome=Withdrawn(**fields, balance=account.balance))
