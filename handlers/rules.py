"""The state rules of contract §4, each a check that returns a rejection or None."""

from handlers.decision import Rejection
from models.documents import Account


def first(*checks: Rejection | None) -> Rejection | None:
    """The first failure among checks listed in contract §4 order."""
    return next((check for check in checks if check is not None), None)


def not_found(account_id: str) -> Rejection:
    return Rejection("account_not_found", f"account {account_id} does not exist")


def not_closed(account: Account) -> Rejection | None:
    if account.status == "closed":
        return Rejection("account_closed", f"account {account.id} is closed")
    return None


def not_frozen(account: Account) -> Rejection | None:
    if account.status == "frozen":
        return Rejection("account_frozen", f"account {account.id} is frozen")
    return None


def same_currency(account: Account, currency: str) -> Rejection | None:
    if account.currency != currency:
        detail = f"account {account.id} holds {account.currency}, not {currency}"
        return Rejection("currency_mismatch", detail)
    return None


def new_external_ref(used: bool, external_ref: str) -> Rejection | None:
    if used:
        return Rejection("duplicate_external_ref", f"external_ref {external_ref} was already used")
    return None


def has_funds(account: Account, amount: int) -> Rejection | None:
    if account.balance - amount < -account.overdraft_limit:
        return Rejection("insufficient_funds", f"account {account.id} lacks funds for {amount}")
    return None


def outflow_on(account: Account, day: str) -> int:
    """The account's outflows so far on `day` (a new day starts from zero)."""
    return account.outflow_total if account.outflow_day == day else 0


def within_daily_limit(account: Account, amount: int, day: str) -> Rejection | None:
    limit = account.daily_outflow_limit
    if limit is not None and outflow_on(account, day) + amount > limit:
        detail = f"account {account.id} would exceed its daily outflow limit of {limit}"
        return Rejection("limit_exceeded", detail)
    return None


def outflow_allowed(account: Account, currency: str, amount: int, day: str) -> Rejection | None:
    """The source-side rules shared by withdrawals and transfers, after `not_closed`."""
    return first(
        not_frozen(account),
        same_currency(account, currency),
        has_funds(account, amount),
        within_daily_limit(account, amount, day),
    )
