"""The benchmark's workload is valid by construction: Tally's pure core accepts every command."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from handlers.admit import admit
from handlers.auth import TokenKeys
from handlers.decision import Context, Decision, Facts
from handlers.ledger import decide, decide_leg
from models.commands import Deposit, Transfer, Withdrawal
from models.documents import Account
from tests.bench.workload import INITIAL_BALANCE, Mix, Signer, account_ids, record, setup_commands

pytestmark = pytest.mark.bench

SECRET = "a-benchmark-secret-of-at-least-32-bytes!"
NOW = datetime.now(UTC)


def _context(command_id: str) -> Context:
    return Context(
        command_id=command_id,
        message_id=command_id,
        now=NOW,
        day=NOW.strftime("%Y-%m-%d"),
        currencies=frozenset({"EUR"}),
    )


def _decided(result: object) -> Decision:
    assert isinstance(result, Decision), result
    return result


def test_every_benchmark_command_is_admitted_and_accepted_by_the_ledger() -> None:
    accounts = account_ids(50)
    signer, keys = Signer(SECRET), TokenKeys(secret=SECRET)
    state: dict[str, Account | None] = {}
    refs: set[str] = set()
    commands = setup_commands(accounts, "t") + Mix(accounts, seed=7, run="t").take(3_000)
    for command in commands:
        rec = record(command, signer)
        token = dict(rec.headers)["ce_authtoken"].decode()
        admitted = admit(command.type, rec.value, token, keys, NOW, 10**15)
        assert isinstance(admitted, tuple), admitted
        cmd, principal = admitted
        ref = getattr(cmd, "external_ref", None)
        facts = Facts(state.get(cmd.account_key), external_ref_used=ref in refs)
        decision = _decided(decide(cmd, principal, facts, _context(command.id)))
        state[cmd.account_key] = decision.account
        if isinstance(cmd, Deposit | Withdrawal):
            refs.add(cmd.external_ref)
        if isinstance(cmd, Transfer):
            assert decision.leg is not None
            credit = decide_leg(decision.leg, Facts(state[cmd.to_account]), _context(command.id))
            state[cmd.to_account] = _decided(credit).account
            assert credit.outcome is not None  # completed, not refunded
    balances = [a.balance for a in state.values() if a is not None]
    assert min(balances) > INITIAL_BALANCE // 2


def test_the_mix_is_60_30_10_and_reproducible_by_seed() -> None:
    accounts = account_ids(100)
    first = Mix(accounts, seed=3, run="r").take(10_000)
    again = Mix(accounts, seed=3, run="r").take(10_000)
    assert [c.data for c in first] == [c.data for c in again]
    shares = Counter(c.type for c in first)
    assert abs(shares["ledger.transfer.v1"] / 10_000 - 0.6) < 0.02
    assert abs(shares["ledger.deposit.v1"] / 10_000 - 0.3) < 0.02
    assert abs(shares["ledger.withdrawal.v1"] / 10_000 - 0.1) < 0.02
