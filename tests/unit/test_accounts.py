"""Account lifecycle rules: open, freeze, unfreeze, close, limits (contract §4)."""

from datetime import timedelta

import pytest

from models.commands import CloseAccount, FreezeAccount, OpenAccount, SetLimits, UnfreezeAccount
from models.events import (
    AccountClosed,
    AccountFrozen,
    AccountOpened,
    AccountUnfrozen,
    LimitsChanged,
)

from .factories import NOW, accepted, account, context, reason, run

pytestmark = pytest.mark.unit

OPEN = OpenAccount(account_id="acc-9", owner_id="bob", currency="USD", daily_outflow_limit=500)


def test_opening_creates_an_open_empty_account_at_version_one() -> None:
    later = NOW + timedelta(minutes=1)
    decision = accepted(run(OPEN, None, ctx=context(now=later)))
    assert decision.account is not None
    assert decision.account.model_dump() == {
        "_id": "acc-9",
        "owner_id": "bob",
        "currency": "USD",
        "status": "open",
        "balance": 0,
        "overdraft_limit": 0,
        "daily_outflow_limit": 500,
        "created_at": later,
        "updated_at": later,
        "outflow_day": None,
        "outflow_total": 0,
        "version": 1,
    }
    assert decision.entries == ()
    assert decision.outcome == AccountOpened(**OPEN.model_dump(), balance=0)
    assert decision.outcome.subject == "acc-9"


def test_opening_an_existing_account_is_account_exists() -> None:
    assert reason(run(OPEN, account(id="acc-9"))) == "account_exists"


def test_opening_over_a_closed_account_is_account_exists() -> None:
    assert reason(run(OPEN, account(id="acc-9", status="closed"))) == "account_exists"


def test_opening_in_an_unsupported_currency_is_unsupported_currency() -> None:
    command = OpenAccount(account_id="a", owner_id="o", currency="XTS")
    assert reason(run(command, None)) == "unsupported_currency"


def test_account_exists_beats_unsupported_currency() -> None:
    command = OpenAccount(account_id="acc-1", owner_id="o", currency="XTS")
    assert reason(run(command, account())) == "account_exists"


FREEZE = FreezeAccount(account_id="acc-1", reason="chargeback investigation")


def test_freezing_an_open_account_freezes_it_and_reports_the_reason() -> None:
    decision = accepted(run(FREEZE, account()))
    assert decision.account is not None
    assert (decision.account.status, decision.account.version) == ("frozen", 4)
    assert decision.outcome == AccountFrozen(account_id="acc-1", reason="chargeback investigation")


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_freezing_an_account_that_is_not_open_is_invalid_state(status: str) -> None:
    assert reason(run(FREEZE, account(status=status))) == "invalid_state"


def test_freezing_a_missing_account_is_account_not_found() -> None:
    assert reason(run(FREEZE, None)) == "account_not_found"


def test_unfreezing_a_frozen_account_opens_it() -> None:
    decision = accepted(run(UnfreezeAccount(account_id="acc-1"), account(status="frozen")))
    assert decision.account is not None
    assert decision.account.status == "open"
    assert decision.outcome == AccountUnfrozen(account_id="acc-1")


@pytest.mark.parametrize("status", ["open", "closed"])
def test_unfreezing_an_account_that_is_not_frozen_is_invalid_state(status: str) -> None:
    result = run(UnfreezeAccount(account_id="acc-1"), account(status=status))
    assert reason(result) == "invalid_state"


def test_unfreezing_a_missing_account_is_account_not_found() -> None:
    assert reason(run(UnfreezeAccount(account_id="x"), None)) == "account_not_found"


CLOSE = CloseAccount(account_id="acc-1")


@pytest.mark.parametrize("status", ["open", "frozen"])
def test_closing_an_empty_account_closes_it(status: str) -> None:
    decision = accepted(run(CLOSE, account(balance=0, status=status)))
    assert decision.account is not None
    assert decision.account.status == "closed"
    assert decision.outcome == AccountClosed(account_id="acc-1")


@pytest.mark.parametrize("balance", [1, -1])
def test_closing_an_account_with_a_balance_is_balance_not_zero(balance: int) -> None:
    result = run(CLOSE, account(balance=balance, overdraft_limit=5))
    assert reason(result) == "balance_not_zero"


def test_closing_a_closed_account_is_account_closed() -> None:
    assert reason(run(CLOSE, account(status="closed", balance=0))) == "account_closed"


def test_account_closed_beats_balance_not_zero() -> None:
    assert reason(run(CLOSE, account(status="closed", balance=7))) == "account_closed"


def test_closing_a_missing_account_is_account_not_found() -> None:
    assert reason(run(CLOSE, None)) == "account_not_found"


def test_setting_the_overdraft_keeps_the_daily_limit() -> None:
    command = SetLimits(account_id="acc-1", overdraft_limit=50)
    decision = accepted(run(command, account(daily_outflow_limit=300)))
    assert decision.outcome == LimitsChanged(
        account_id="acc-1", overdraft_limit=50, daily_outflow_limit=300
    )
    assert decision.account is not None
    assert (decision.account.overdraft_limit, decision.account.daily_outflow_limit) == (50, 300)


def test_setting_the_daily_limit_keeps_the_overdraft() -> None:
    command = SetLimits(account_id="acc-1", daily_outflow_limit=10)
    decision = accepted(run(command, account(overdraft_limit=70)))
    assert decision.outcome == LimitsChanged(
        account_id="acc-1", overdraft_limit=70, daily_outflow_limit=10
    )


def test_a_null_daily_limit_removes_it() -> None:
    command = SetLimits.model_validate_json(b'{"account_id":"acc-1","daily_outflow_limit":null}')
    decision = accepted(run(command, account(daily_outflow_limit=300)))
    assert decision.account is not None
    assert decision.account.daily_outflow_limit is None


def test_limits_of_a_frozen_account_can_change() -> None:
    command = SetLimits(account_id="acc-1", overdraft_limit=1)
    accepted(run(command, account(status="frozen")))


def test_limits_of_a_closed_account_are_account_closed() -> None:
    command = SetLimits(account_id="acc-1", overdraft_limit=1)
    assert reason(run(command, account(status="closed"))) == "account_closed"


def test_limits_of_a_missing_account_are_account_not_found() -> None:
    assert reason(run(SetLimits(account_id="x", overdraft_limit=1), None)) == "account_not_found"


def test_every_decision_bumps_the_version_and_stamps_updated_at() -> None:
    later = NOW + timedelta(hours=2)
    decision = accepted(run(FREEZE, account(version=41), ctx=context(now=later)))
    assert decision.account is not None
    assert (decision.account.version, decision.account.updated_at) == (42, later)
    assert decision.account.created_at == NOW
