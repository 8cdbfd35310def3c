"""Transfers: the debit on the source, the credit leg, the refund leg (contract §4)."""

from datetime import timedelta

import pytest

from handlers.decision import Context, Decision, Facts
from handlers.ledger import decide_leg
from models.commands import Transfer
from models.documents import Account, TransferLeg, TransferRecord
from models.events import TransferCompleted, TransferFailed

from .factories import DAY, NOW, OWNER, accepted, account, context, reason, run

pytestmark = pytest.mark.unit

TRANSFER = Transfer(
    transfer_id="tr-1",
    from_account="acc-1",
    to_account="acc-2",
    amount=400,
    currency="EUR",
    memo="rent",
)


def debit(ctx: Context | None = None) -> Decision:
    return accepted(run(TRANSFER, account(balance=1_000), OWNER, ctx or context("cmd-t")))


def credit_leg() -> TransferLeg:
    leg = debit().leg
    assert leg is not None
    return leg


def destination(**changes: object) -> Account:
    return account(id="acc-2", owner_id="bob", balance=50, **changes)


def leg_context(message_id: str) -> Context:
    return context(message_id, now=NOW + timedelta(seconds=3))


def refund_for(dest: Account | None) -> TransferLeg:
    refund = decide_leg(credit_leg(), Facts(dest), leg_context("cmd-t:credit")).leg
    assert refund is not None
    return refund


def test_an_accepted_transfer_debits_the_source_and_sends_a_credit_leg() -> None:
    decision = debit()
    assert decision.account is not None
    assert decision.account.balance == 600
    (entry,) = decision.entries
    assert (entry.id, entry.kind, entry.amount, entry.transfer_id) == (
        "cmd-t:transfer_out",
        "transfer_out",
        -400,
        "tr-1",
    )
    assert decision.leg == TransferLeg(
        leg="credit",
        command_id="cmd-t",
        transfer_id="tr-1",
        from_account="acc-1",
        to_account="acc-2",
        amount=400,
        currency="EUR",
        memo="rent",
    )
    assert decision.leg.message_id == "cmd-t:credit"
    assert decision.leg.account_key == "acc-2"


def test_an_accepted_transfer_has_no_outcome_until_it_settles() -> None:
    assert debit().outcome is None


def test_an_accepted_transfer_records_the_transfer_as_debited() -> None:
    assert debit().transfer == TransferRecord(
        id="tr-1",
        from_account="acc-1",
        to_account="acc-2",
        amount=400,
        currency="EUR",
        state="debited",
        command_id="cmd-t",
        memo="rent",
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_credit_leg_carries_the_commands_traceparent() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = Context("cmd-t", "cmd-t", NOW, DAY, frozenset({"EUR"}), traceparent=trace)
    leg = debit(ctx).leg
    assert leg is not None
    assert leg.traceparent == trace


def test_a_transfer_out_counts_towards_the_daily_limit() -> None:
    decision = debit()
    assert decision.account is not None
    assert (decision.account.outflow_day, decision.account.outflow_total) == (DAY, 400)


def test_a_transfer_to_the_same_account_is_same_account() -> None:
    command = TRANSFER.model_copy(update={"to_account": "acc-1"})
    assert reason(run(command, account())) == "same_account"


def test_a_reused_transfer_id_is_duplicate_transfer() -> None:
    assert reason(run(TRANSFER, account(), transfer_id_used=True)) == "duplicate_transfer"


def test_same_account_beats_duplicate_transfer_and_a_missing_source() -> None:
    command = TRANSFER.model_copy(update={"to_account": "acc-1"})
    assert reason(run(command, None, transfer_id_used=True)) == "same_account"


def test_duplicate_transfer_beats_a_missing_source() -> None:
    assert reason(run(TRANSFER, None, transfer_id_used=True)) == "duplicate_transfer"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "account_not_found"),
        (account(status="closed"), "account_closed"),
        (account(status="frozen"), "account_frozen"),
        (account(currency="USD"), "currency_mismatch"),
        (account(balance=399), "insufficient_funds"),
        (account(daily_outflow_limit=399), "limit_exceeded"),
        # Order: each row also breaks every rule listed after it.
        (account(status="closed", currency="USD", balance=0), "account_closed"),
        (account(status="frozen", currency="USD", balance=0), "account_frozen"),
        (account(currency="USD", balance=0, daily_outflow_limit=0), "currency_mismatch"),
        (account(balance=0, daily_outflow_limit=0), "insufficient_funds"),
    ],
)
def test_the_source_rules_apply_in_spec_order(source: Account | None, expected: str) -> None:
    assert reason(run(TRANSFER, source)) == expected


def test_the_credit_leg_credits_the_destination_and_completes_the_transfer() -> None:
    stored = debit().transfer
    decision = decide_leg(credit_leg(), Facts(destination(), transfer=stored), leg_context("x"))
    assert decision.account is not None
    assert (decision.account.id, decision.account.balance) == ("acc-2", 450)
    (entry,) = decision.entries
    assert (entry.id, entry.kind, entry.amount, entry.command_id) == (
        "cmd-t:transfer_in",
        "transfer_in",
        400,
        "cmd-t",
    )
    assert decision.outcome == TransferCompleted(
        transfer_id="tr-1",
        from_account="acc-1",
        to_account="acc-2",
        amount=400,
        currency="EUR",
        memo="rent",
    )
    assert decision.outcome.subject == "acc-1"
    assert decision.leg is None


def test_completing_keeps_the_stored_transfers_creation_time() -> None:
    stored = debit().transfer
    decision = decide_leg(credit_leg(), Facts(destination(), transfer=stored), leg_context("x"))
    assert decision.transfer is not None
    assert decision.transfer.state == "completed"
    assert (decision.transfer.created_at, decision.transfer.updated_at) == (
        NOW,
        NOW + timedelta(seconds=3),
    )


def test_completing_without_the_stored_transfer_rebuilds_it_from_the_leg() -> None:
    decision = decide_leg(credit_leg(), Facts(destination()), leg_context("x"))
    assert decision.transfer is not None
    assert (decision.transfer.id, decision.transfer.state) == ("tr-1", "completed")


def test_a_frozen_destination_is_credited() -> None:
    decision = decide_leg(credit_leg(), Facts(destination(status="frozen")), leg_context("x"))
    assert isinstance(decision.outcome, TransferCompleted)


@pytest.mark.parametrize(
    ("dest", "why"),
    [
        (None, "account_not_found"),
        (destination(status="closed"), "account_closed"),
        (destination(currency="GBP"), "currency_mismatch"),
    ],
)
def test_a_destination_that_cannot_be_credited_sends_a_refund(
    dest: Account | None, why: str
) -> None:
    decision = decide_leg(credit_leg(), Facts(dest), leg_context("cmd-t:credit"))
    assert (decision.account, decision.entries, decision.outcome, decision.transfer) == (
        None,
        (),
        None,
        None,
    )
    assert decision.leg == credit_leg().model_copy(update={"leg": "refund", "reason": why})
    assert decision.leg.account_key == "acc-1"
    assert decision.leg.message_id == "cmd-t:refund"


def test_the_refund_credits_the_source_back_and_fails_the_transfer() -> None:
    source = accepted(run(TRANSFER, account(balance=1_000))).account
    stored = debit().transfer
    decision = decide_leg(refund_for(None), Facts(source, transfer=stored), leg_context("r"))
    assert decision.account is not None
    assert decision.account.balance == 1_000
    (entry,) = decision.entries
    assert (entry.id, entry.kind, entry.amount) == ("cmd-t:refund", "refund", 400)
    assert decision.outcome == TransferFailed(
        transfer_id="tr-1",
        from_account="acc-1",
        to_account="acc-2",
        amount=400,
        currency="EUR",
        reason="account_not_found",
    )
    assert decision.transfer is not None
    assert (decision.transfer.state, decision.transfer.reason) == ("failed", "account_not_found")
    assert decision.transfer.created_at == NOW


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_the_refund_is_credited_whatever_the_sources_status(status: str) -> None:
    source = account(balance=0, status=status)
    decision = decide_leg(refund_for(None), Facts(source), leg_context("r"))
    assert decision.account is not None
    assert decision.account.balance == 400


def test_a_refund_to_a_vanished_source_still_reports_the_failure() -> None:
    decision = decide_leg(refund_for(None), Facts(None), leg_context("r"))
    assert (decision.account, decision.entries) == (None, ())
    assert isinstance(decision.outcome, TransferFailed)
    assert decision.transfer is not None
    assert decision.transfer.state == "failed"


def test_the_refund_reason_names_why_the_credit_was_refused() -> None:
    refund = refund_for(destination(status="closed"))
    decision = decide_leg(refund, Facts(account()), leg_context("r"))
    assert isinstance(decision.outcome, TransferFailed)
    assert decision.outcome.reason == "account_closed"


def test_a_refund_does_not_count_as_outflow() -> None:
    source = account(outflow_day=DAY, outflow_total=400)
    decision = decide_leg(refund_for(None), Facts(source), leg_context("r"))
    assert decision.account is not None
    assert decision.account.outflow_total == 400
