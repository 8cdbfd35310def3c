"""Deposits and withdrawals: postings, funds, daily limits and the order of rules (contract §4)."""

from collections.abc import Callable

import pytest

from models.commands import Deposit, Withdrawal
from models.documents import Entry
from models.events import Deposited, Withdrawn

from .factories import DAY, NOW, PAYMENTS, accepted, account, context, reason, run

pytestmark = pytest.mark.unit

Builder = Callable[..., Deposit | Withdrawal]


def deposit(amount: int = 250, currency: str = "EUR") -> Deposit:
    return Deposit(account_id="acc-1", amount=amount, currency=currency, external_ref="psp-77")


def withdrawal(amount: int = 250, currency: str = "EUR") -> Withdrawal:
    return Withdrawal(account_id="acc-1", amount=amount, currency=currency, external_ref="atm-5")


def test_a_deposit_credits_the_account_and_journals_the_posting() -> None:
    decision = accepted(run(deposit(), account(balance=1_000), PAYMENTS, context("cmd-7")))
    assert decision.account is not None
    assert (decision.account.balance, decision.account.version) == (1_250, 4)
    assert decision.entries == (
        Entry(
            id="cmd-7:deposit",
            account_id="acc-1",
            amount=250,
            balance_after=1_250,
            command_id="cmd-7",
            kind="deposit",
            external_ref="psp-77",
            at=NOW,
        ),
    )
    assert decision.outcome == Deposited(
        account_id="acc-1", amount=250, currency="EUR", external_ref="psp-77", balance=1_250
    )


def test_a_deposit_does_not_count_as_outflow() -> None:
    decision = accepted(run(deposit(), account()))
    assert decision.account is not None
    assert (decision.account.outflow_day, decision.account.outflow_total) == (None, 0)


def test_a_frozen_account_accepts_deposits() -> None:
    accepted(run(deposit(), account(status="frozen")))


@pytest.mark.parametrize("make", [deposit, withdrawal])
def test_a_missing_account_is_account_not_found(make: Builder) -> None:
    assert reason(run(make(), None)) == "account_not_found"


@pytest.mark.parametrize("make", [deposit, withdrawal])
def test_a_closed_account_is_account_closed(make: Builder) -> None:
    assert reason(run(make(), account(status="closed"))) == "account_closed"


@pytest.mark.parametrize("make", [deposit, withdrawal])
def test_another_currency_is_currency_mismatch(make: Builder) -> None:
    assert reason(run(make(currency="USD"), account())) == "currency_mismatch"


@pytest.mark.parametrize("make", [deposit, withdrawal])
def test_a_reused_external_ref_is_duplicate_external_ref(make: Builder) -> None:
    assert reason(run(make(), account(), external_ref_used=True)) == "duplicate_external_ref"


def test_account_closed_beats_currency_mismatch_and_duplicate_ref() -> None:
    result = run(deposit(currency="USD"), account(status="closed"), external_ref_used=True)
    assert reason(result) == "account_closed"


def test_currency_mismatch_beats_duplicate_external_ref() -> None:
    result = run(withdrawal(currency="USD"), account(), external_ref_used=True)
    assert reason(result) == "currency_mismatch"


def test_a_withdrawal_debits_the_account_and_journals_a_negative_posting() -> None:
    decision = accepted(run(withdrawal(300), account(balance=1_000), ctx=context("cmd-8")))
    assert decision.account is not None
    assert decision.account.balance == 700
    (entry,) = decision.entries
    assert (entry.id, entry.kind, entry.amount, entry.balance_after) == (
        "cmd-8:withdrawal",
        "withdrawal",
        -300,
        700,
    )
    assert decision.outcome == Withdrawn(
        account_id="acc-1", amount=300, currency="EUR", external_ref="atm-5", balance=700
    )


def test_a_frozen_account_refuses_withdrawals() -> None:
    assert reason(run(withdrawal(), account(status="frozen"))) == "account_frozen"


def test_duplicate_external_ref_beats_account_frozen() -> None:
    result = run(withdrawal(), account(status="frozen"), external_ref_used=True)
    assert reason(result) == "duplicate_external_ref"


def test_account_frozen_beats_insufficient_funds() -> None:
    assert reason(run(withdrawal(5_000), account(status="frozen"))) == "account_frozen"


def test_withdrawing_the_whole_balance_is_allowed() -> None:
    decision = accepted(run(withdrawal(1_000), account(balance=1_000)))
    assert decision.account is not None
    assert decision.account.balance == 0


def test_withdrawing_more_than_the_balance_is_insufficient_funds() -> None:
    assert reason(run(withdrawal(1_001), account(balance=1_000))) == "insufficient_funds"


def test_the_overdraft_limit_extends_the_funds_exactly() -> None:
    overdrawn = account(balance=100, overdraft_limit=50)
    decision = accepted(run(withdrawal(150), overdrawn))
    assert decision.account is not None
    assert decision.account.balance == -50
    assert reason(run(withdrawal(151), overdrawn)) == "insufficient_funds"


def test_an_outflow_counts_towards_the_daily_total_of_the_record_day() -> None:
    decision = accepted(run(withdrawal(300), account(daily_outflow_limit=1_000)))
    assert decision.account is not None
    assert (decision.account.outflow_day, decision.account.outflow_total) == (DAY, 300)


def test_outflows_on_the_same_day_add_up() -> None:
    acc = account(outflow_day=DAY, outflow_total=400)
    decision = accepted(run(withdrawal(100), acc))
    assert decision.account is not None
    assert decision.account.outflow_total == 500


def test_the_daily_limit_can_be_reached_but_not_exceeded() -> None:
    acc = account(daily_outflow_limit=500, outflow_day=DAY, outflow_total=400)
    accepted(run(withdrawal(100), acc))
    assert reason(run(withdrawal(101), acc)) == "limit_exceeded"


def test_a_new_utc_day_starts_a_new_daily_total() -> None:
    acc = account(daily_outflow_limit=500, outflow_day="2025-03-13", outflow_total=500)
    decision = accepted(run(withdrawal(500), acc, ctx=context(day=DAY)))
    assert decision.account is not None
    assert (decision.account.outflow_day, decision.account.outflow_total) == (DAY, 500)


def test_without_a_daily_limit_outflows_are_only_bounded_by_funds() -> None:
    acc = account(balance=10**12, daily_outflow_limit=None, outflow_day=DAY, outflow_total=10**11)
    accepted(run(withdrawal(10**12), acc))


def test_insufficient_funds_beats_limit_exceeded() -> None:
    acc = account(balance=10, daily_outflow_limit=5)
    assert reason(run(withdrawal(20), acc)) == "insufficient_funds"


def test_a_refused_withdrawal_changes_nothing() -> None:
    acc = account(balance=10)
    assert reason(run(withdrawal(20), acc)) == "insufficient_funds"
    assert acc.balance == 10
