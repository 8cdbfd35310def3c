"""Who may send what (contract §6): `ops` everything, `customer` their own accounts, `risk`
(the watch) a freeze."""

from collections.abc import Iterable

from handlers.auth import Principal
from models.commands import (
    CloseAccount,
    Command,
    Deposit,
    FreezeAccount,
    OpenAccount,
    Transfer,
    Withdrawal,
)
from models.documents import Account


def is_owner(principal: Principal, account: Account | None) -> bool:
    # A missing account has no owner: customers get `forbidden`, never learning it is absent.
    return (
        "customer" in principal.roles and account is not None and account.owner_id == principal.sub
    )


def permitted(command: Command, principal: Principal, account: Account | None) -> bool:
    """Whether `principal` may send `command` acting on `account` (None: does not exist)."""
    roles = principal.roles
    if "ops" in roles:
        return True
    match command:
        case OpenAccount():
            own = "customer" in roles and command.owner_id == principal.sub
            return own and command.overdraft_limit == 0
        case Deposit():
            return "payments" in roles
        case Withdrawal():
            return "payments" in roles or is_owner(principal, account)
        case Transfer() | CloseAccount():
            return is_owner(principal, account)
        case FreezeAccount():  # `tally watch` freezes an account passing the velocity rule
            return "risk" in roles
        case _:  # unfreeze, limits: back office only
            return False


READ_EVERY_ACCOUNT = frozenset({"ops", "payments"})


def reads_every_account(principal: Principal) -> bool:
    return bool(principal.roles & READ_EVERY_ACCOUNT)


def may_read(principal: Principal, owners: Iterable[str]) -> bool:
    """Whether `principal` may read a record of accounts with these owners (contract §13):
    `ops` and `payments` every record, a `customer` those of an account they own."""
    if reads_every_account(principal):
        return True
    return "customer" in principal.roles and principal.sub in set(owners)


def may_operate(principal: Principal) -> bool:
    """Whether `principal` may use the operator console and its `/v1/ops` routes (contract
    §15): reading the fleet and the dead letters, and replaying them. `ops` only."""
    return "ops" in principal.roles
