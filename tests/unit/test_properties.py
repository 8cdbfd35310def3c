"""Property tests: random command sequences through decide/decide_leg keep contract §8's invariants."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.decision import Decision, Facts, Rejection
from handlers.ledger import decide, decide_leg
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
from models.documents import Account, Entry, TransferLeg, TransferRecord
from models.events import Deposited, TransferCompleted, TransferFailed, Withdrawn

from .factories import OPS, context

pytestmark = pytest.mark.unit

ACCOUNTS = ["a", "b", "c"]
ids = st.sampled_from([*ACCOUNTS, "d"])  # "d" starts unopened
currencies = st.sampled_from(["EUR", "EUR", "USD"])
amounts = st.integers(min_value=1, max_value=400)
refs = st.sampled_from(["r1", "r2", "r3", "r4"])
days = st.sampled_from(["2025-03-14", "2025-03-15"])


@dataclass(frozen=True)
class Deliver:
    """Deliver one pending transfer leg (chosen by index), in any order relative to others."""

    pick: int


deposits = st.builds(
    Deposit, account_id=ids, amount=amounts, currency=currencies, external_ref=refs
)
withdrawals = st.builds(
    Withdrawal, account_id=ids, amount=amounts, currency=currencies, external_ref=refs
)
transfers = st.builds(
    Transfer,
    transfer_id=st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6"]),
    from_account=ids,
    to_account=st.sampled_from([*ACCOUNTS, "missing"]),
    amount=amounts,
    currency=currencies,
)
deliveries = st.builds(Deliver, st.integers(0, 20))
# Money movement and leg deliveries dominate; lifecycle commands reshape the accounts.
commands: st.SearchStrategy[Command | Deliver] = st.one_of(
    deposits,
    withdrawals,
    transfers,
    deliveries,
    transfers,
    deliveries,
    st.builds(
        OpenAccount,
        account_id=ids,
        owner_id=st.just("alice"),
        currency=currencies,
        overdraft_limit=st.sampled_from([0, 100]),
        daily_outflow_limit=st.sampled_from([None, 300]),
    ),
    st.builds(FreezeAccount, account_id=ids, reason=st.just("check")),
    st.builds(UnfreezeAccount, account_id=ids),
    st.builds(CloseAccount, account_id=ids),
    st.builds(SetLimits, account_id=ids, daily_outflow_limit=st.sampled_from([None, 200])),
)
steps = st.lists(st.tuples(commands, days), max_size=40)

# Every sequence starts from open, funded accounts so that most steps reach the rules.
SEED: list[Command] = [
    OpenAccount(account_id="a", owner_id="alice", currency="EUR", overdraft_limit=100),
    OpenAccount(account_id="b", owner_id="bob", currency="EUR", daily_outflow_limit=300),
    OpenAccount(account_id="c", owner_id="carol", currency="USD"),
    *(
        Deposit(account_id=i, amount=500, currency=c, external_ref="seed")
        for i, c in [("a", "EUR"), ("b", "EUR"), ("c", "USD")]
    ),
]


@dataclass
class Ledger:
    """An in-memory stand-in for the shell: loads facts, applies decisions."""

    accounts: dict[str, Account] = field(default_factory=dict)
    journal: list[Entry] = field(default_factory=list)
    refs: set[tuple[str, str]] = field(default_factory=set)
    transfers: dict[str, TransferRecord] = field(default_factory=dict)
    pending: list[TransferLeg] = field(default_factory=list)
    money_in: int = 0
    money_out: int = 0
    terminal: dict[str, int] = field(default_factory=dict)  # transfer id -> outcomes seen

    def facts(self, command: Command) -> Facts:
        ref = getattr(command, "external_ref", None)
        transfer_id = getattr(command, "transfer_id", None)
        return Facts(
            self.accounts.get(command.account_key),
            external_ref_used=(command.account_key, ref) in self.refs,
            transfer_id_used=transfer_id in self.transfers,
        )

    def send(self, command: Command, number: int, day: str) -> Decision | Rejection:
        facts, ctx = self.facts(command), context(f"cmd-{number}", day=day)
        result = decide(command, OPS, facts, ctx)
        assert decide(command, OPS, facts, ctx) == result  # deterministic: same in, same out
        if isinstance(result, Decision):
            if isinstance(command, Deposit | Withdrawal):
                self.refs.add((command.account_id, command.external_ref))
            self.apply(result)
        return result

    def deliver(self, pick: int, day: str) -> Decision:
        leg = self.pending.pop(pick % len(self.pending))
        facts = Facts(
            self.accounts.get(leg.account_key), transfer=self.transfers.get(leg.transfer_id)
        )
        ctx = context(leg.message_id, day=day)
        result = decide_leg(leg, facts, ctx)
        assert decide_leg(leg, facts, ctx) == result
        self.apply(result)
        return result

    def apply(self, decision: Decision) -> None:
        if decision.account is not None:
            before = self.accounts.get(decision.account.id)
            assert decision.account.version == (before.version if before else 0) + 1
            self.accounts[decision.account.id] = decision.account
        self.journal.extend(decision.entries)
        self.pending.extend([decision.leg] if decision.leg else [])
        if decision.transfer is not None:
            self.transfers[decision.transfer.id] = decision.transfer
        self.count(decision)

    def count(self, decision: Decision) -> None:
        outcome = decision.outcome
        if isinstance(outcome, Deposited):
            self.money_in += outcome.amount
        if isinstance(outcome, Withdrawn):
            self.money_out += outcome.amount
        if isinstance(outcome, TransferCompleted | TransferFailed):
            self.terminal[outcome.transfer_id] = self.terminal.get(outcome.transfer_id, 0) + 1

    def check(self) -> None:
        in_flight = sum(leg.amount for leg in self.pending)
        total = sum(acc.balance for acc in self.accounts.values())
        assert total + in_flight == self.money_in - self.money_out
        for acc in self.accounts.values():
            assert acc.balance == sum(e.amount for e in self.journal if e.account_id == acc.id)
        assert len({e.id for e in self.journal}) == len(self.journal)


def run_all(ledger: Ledger, sequence: list[tuple[Command | Deliver, str]]) -> None:
    for number, (step, day) in enumerate(sequence):
        if isinstance(step, Deliver):
            if ledger.pending:
                ledger.deliver(step.pick, day)
        else:
            ledger.send(step, number, day)
        ledger.check()


def seeded() -> Ledger:
    ledger = Ledger()
    for number, command in enumerate(SEED):
        assert isinstance(ledger.send(command, -1 - number, "2025-03-13"), Decision)
    return ledger


@settings(max_examples=150, deadline=None)
@given(steps)
def test_money_is_conserved_and_balances_match_the_journal(
    sequence: list[tuple[Command | Deliver, str]],
) -> None:
    ledger = seeded()
    run_all(ledger, sequence)
    while ledger.pending:  # at rest: every transfer settles
        ledger.deliver(0, "2025-03-16")
    ledger.check()
    assert sum(a.balance for a in ledger.accounts.values()) == ledger.money_in - ledger.money_out


@settings(max_examples=150, deadline=None)
@given(steps)
def test_every_accepted_transfer_ends_completed_or_failed_exactly_once(
    sequence: list[tuple[Command | Deliver, str]],
) -> None:
    ledger = seeded()
    run_all(ledger, sequence)
    while ledger.pending:
        ledger.deliver(0, "2025-03-16")
    assert {t.state for t in ledger.transfers.values()} <= {"completed", "failed"}
    assert ledger.terminal == dict.fromkeys(ledger.transfers, 1)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_no_outflow_takes_a_balance_below_its_overdraft_or_past_its_daily_limit(
    sequence: list[tuple[Command | Deliver, str]],
) -> None:
    ledger = seeded()
    for number, (step, day) in enumerate(sequence):
        if isinstance(step, Deliver):
            if ledger.pending:
                ledger.deliver(step.pick, day)
            continue
        result = ledger.send(step, number, day)
        if isinstance(result, Decision) and isinstance(step, Withdrawal | Transfer):
            account = result.account
            assert account is not None
            assert account.balance >= -account.overdraft_limit
            limit = account.daily_outflow_limit
            assert limit is None or account.outflow_total <= limit


@settings(max_examples=100, deadline=None)
@given(steps)
def test_closed_accounts_accept_nothing_but_refunds(
    sequence: list[tuple[Command | Deliver, str]],
) -> None:
    ledger = seeded()
    closed_before: set[str] = set()
    for number, (step, day) in enumerate(sequence):
        closed_before = {i for i, a in ledger.accounts.items() if a.status == "closed"}
        seen = len(ledger.journal)
        if isinstance(step, Deliver):
            if ledger.pending:
                ledger.deliver(step.pick, day)
        else:
            ledger.send(step, number, day)
        new = ledger.journal[seen:]
        assert all(e.kind == "refund" for e in new if e.account_id in closed_before)
