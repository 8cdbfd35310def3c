"""Permissions (contract §6): roles, ownership, and their place in the order of checks."""

import pytest

from handlers.auth import Principal
from handlers.decision import Rejection
from handlers.permissions import may_operate
from models.commands import (
    CloseAccount,
    Command,
    Deposit,
    FreezeAccount,
    OpenAccount,
    SetLimits,
    Transfer,
    UnfreezeAccount,
    Withdrawal,
)
from models.documents import Account

from .factories import OPS, OWNER, PAYMENTS, STRANGER, accepted, account, reason, run

pytestmark = pytest.mark.unit

NOBODY = Principal("alice", frozenset())

OPEN = OpenAccount(account_id="acc-9", owner_id="alice", currency="EUR")
DEPOSIT = Deposit(account_id="acc-1", amount=10, currency="EUR", external_ref="r")
WITHDRAWAL = Withdrawal(account_id="acc-1", amount=10, currency="EUR", external_ref="r")
TRANSFER = Transfer(
    transfer_id="t", from_account="acc-1", to_account="acc-2", amount=1, currency="EUR"
)
FREEZE = FreezeAccount(account_id="acc-1", reason="fraud check")
UNFREEZE = UnfreezeAccount(account_id="acc-1")
CLOSE = CloseAccount(account_id="acc-1")
LIMITS = SetLimits(account_id="acc-1", overdraft_limit=5)

# (command, principal, allowed) on an account owned by alice; the account state is such
# that every permitted command is accepted.
CASES = [
    (OPEN, OWNER, True),
    (OPEN, STRANGER, False),
    (OPEN, PAYMENTS, False),
    (OPEN, OPS, True),
    (DEPOSIT, PAYMENTS, True),
    (DEPOSIT, OWNER, False),
    (WITHDRAWAL, OWNER, True),
    (WITHDRAWAL, STRANGER, False),
    (WITHDRAWAL, PAYMENTS, True),
    (TRANSFER, OWNER, True),
    (TRANSFER, STRANGER, False),
    (TRANSFER, PAYMENTS, False),
    (FREEZE, OWNER, False),
    (FREEZE, PAYMENTS, False),
    (UNFREEZE, OWNER, False),
    (CLOSE, OWNER, True),
    (CLOSE, STRANGER, False),
    (CLOSE, PAYMENTS, False),
    (LIMITS, OWNER, False),
    (LIMITS, PAYMENTS, False),
    (DEPOSIT, NOBODY, False),
    (CLOSE, NOBODY, False),
]


def state_for(command: Command) -> Account | None:
    if isinstance(command, OpenAccount):
        return None
    if isinstance(command, UnfreezeAccount):
        return account(status="frozen")
    return account(balance=0 if isinstance(command, CloseAccount) else 1_000)


@pytest.mark.parametrize(("command", "principal", "allowed"), CASES)
def test_each_role_may_send_exactly_its_commands(
    command: Command, principal: Principal, allowed: bool
) -> None:
    acc = state_for(command)
    result = run(command, acc, principal)
    if allowed:
        accepted(result)
    else:
        assert reason(result) == "forbidden"


@pytest.mark.parametrize(
    "command", [DEPOSIT, WITHDRAWAL, TRANSFER, FREEZE, UNFREEZE, CLOSE, LIMITS]
)
def test_ops_may_send_everything(command: Command) -> None:
    accepted(run(command, state_for(command), OPS))


def test_a_customer_may_not_open_an_account_with_an_overdraft() -> None:
    command = OpenAccount(account_id="a", owner_id="alice", currency="EUR", overdraft_limit=1)
    assert reason(run(command, None, OWNER)) == "forbidden"


def test_ops_may_open_an_account_with_an_overdraft_for_anyone() -> None:
    command = OpenAccount(account_id="a", owner_id="bob", currency="EUR", overdraft_limit=500)
    assert accepted(run(command, None, OPS)).account is not None


def test_a_customer_may_open_an_account_with_a_daily_limit() -> None:
    command = OpenAccount(account_id="a", owner_id="alice", currency="EUR", daily_outflow_limit=9)
    accepted(run(command, None, OWNER))


def test_the_customer_role_is_needed_to_act_as_owner() -> None:
    assert reason(run(WITHDRAWAL, account(), NOBODY)) == "forbidden"


@pytest.mark.parametrize("command", [WITHDRAWAL, TRANSFER, CLOSE])
def test_a_customer_is_forbidden_on_a_missing_account_so_its_absence_is_not_revealed(
    command: Command,
) -> None:
    assert reason(run(command, None, OWNER)) == "forbidden"


@pytest.mark.parametrize("command", [DEPOSIT, WITHDRAWAL, TRANSFER, FREEZE, CLOSE, LIMITS])
def test_ops_on_a_missing_account_get_account_not_found(command: Command) -> None:
    assert reason(run(command, None, OPS)) == "account_not_found"


def test_forbidden_beats_account_not_found() -> None:
    assert reason(run(FREEZE, None, PAYMENTS)) == "forbidden"


def test_forbidden_beats_state_rules() -> None:
    assert reason(run(CLOSE, account(status="closed"), STRANGER)) == "forbidden"


def test_payments_on_a_missing_account_get_account_not_found_for_withdrawals() -> None:
    assert reason(run(WITHDRAWAL, None, PAYMENTS)) == "account_not_found"


def test_the_forbidden_detail_names_the_command_type() -> None:
    result = run(FREEZE, account(), OWNER)
    assert isinstance(result, Rejection)
    assert FreezeAccount.TYPE in result.detail


def test_only_ops_may_operate_the_console() -> None:
    assert may_operate(OPS)
    assert not any(may_operate(p) for p in (PAYMENTS, OWNER, STRANGER, NOBODY))
    assert may_operate(Principal("both", frozenset({"customer", "ops"})))


RISK = Principal("tally-watch", frozenset({"risk"}))


def test_risk_may_freeze_an_account() -> None:
    frozen = accepted(run(FREEZE, account(), RISK)).account
    assert frozen is not None
    assert frozen.status == "frozen"


@pytest.mark.parametrize("command", [OPEN, DEPOSIT, WITHDRAWAL, TRANSFER, UNFREEZE, CLOSE, LIMITS])
def test_risk_may_send_nothing_but_a_freeze(command: Command) -> None:
    assert reason(run(command, state_for(command), RISK)) == "forbidden"


def test_risk_freezing_a_missing_account_gets_account_not_found() -> None:
    assert reason(run(FREEZE, None, RISK)) == "account_not_found"


def test_risk_may_not_operate_the_console() -> None:
    assert not may_operate(RISK)
