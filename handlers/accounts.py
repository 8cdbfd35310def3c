"""Account lifecycle: open, freeze, unfreeze, close, limits."""

from handlers.decision import Context, Decision, Facts, Rejection
from handlers.postings import touched
from handlers.rules import not_closed, not_found
from models.commands import CloseAccount, FreezeAccount, OpenAccount, SetLimits, UnfreezeAccount
from models.documents import Account
from models.events import (
    AccountClosed,
    AccountFrozen,
    AccountOpened,
    AccountUnfrozen,
    LimitsChanged,
)


def handle_open_account(cmd: OpenAccount, facts: Facts, ctx: Context) -> Decision | Rejection:
    if facts.account is not None:
        return Rejection("account_exists", f"account {cmd.account_id} already exists")
    if cmd.currency not in ctx.currencies:
        return Rejection("unsupported_currency", f"currency {cmd.currency} is not supported")
    opened = AccountOpened(**cmd.model_dump(), balance=0)
    account = Account(
        **cmd.model_dump(exclude={"account_id"}),
        id=cmd.account_id,
        status="open",
        balance=0,
        created_at=ctx.now,
        updated_at=ctx.now,
        version=1,
    )
    return Decision(account, outcome=opened)


def handle_freeze_account(cmd: FreezeAccount, facts: Facts, ctx: Context) -> Decision | Rejection:
    account = facts.account
    if account is None:
        return not_found(cmd.account_id)
    if account.status != "open":
        return Rejection("invalid_state", f"account {account.id} is {account.status}, not open")
    frozen = AccountFrozen(account_id=account.id, reason=cmd.reason)
    return Decision(touched(account, ctx, status="frozen"), outcome=frozen)


def handle_unfreeze_account(
    cmd: UnfreezeAccount, facts: Facts, ctx: Context
) -> Decision | Rejection:
    account = facts.account
    if account is None:
        return not_found(cmd.account_id)
    if account.status != "frozen":
        return Rejection("invalid_state", f"account {account.id} is {account.status}, not frozen")
    unfrozen = AccountUnfrozen(account_id=account.id)
    return Decision(touched(account, ctx, status="open"), outcome=unfrozen)


def handle_close_account(cmd: CloseAccount, facts: Facts, ctx: Context) -> Decision | Rejection:
    account = facts.account
    if account is None:
        return not_found(cmd.account_id)
    if rejection := not_closed(account):
        return rejection
    if account.balance != 0:
        return Rejection("balance_not_zero", f"account {account.id} has a balance")
    closed = AccountClosed(account_id=account.id)
    return Decision(touched(account, ctx, status="closed"), outcome=closed)


def handle_set_limits(cmd: SetLimits, facts: Facts, ctx: Context) -> Decision | Rejection:
    account = facts.account
    if account is None:
        return not_found(cmd.account_id)
    if rejection := not_closed(account):
        return rejection
    # `overdraft_limit` is never explicitly null, so None means "absent: keep".
    overdraft = account.overdraft_limit if cmd.overdraft_limit is None else cmd.overdraft_limit
    daily = cmd.daily_outflow_limit if cmd.sets_daily_outflow_limit else account.daily_outflow_limit
    changed = LimitsChanged(
        account_id=account.id, overdraft_limit=overdraft, daily_outflow_limit=daily
    )
    updated = touched(account, ctx, overdraft_limit=overdraft, daily_outflow_limit=daily)
    return Decision(updated, outcome=changed)
