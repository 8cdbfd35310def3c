"""The benchmark's commands: valid by construction, signed, as Kafka records (binary mode)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

OPEN = "ledger.account.open.v1"
DEPOSIT = "ledger.deposit.v1"
WITHDRAWAL = "ledger.withdrawal.v1"
TRANSFER = "ledger.transfer.v1"
CURRENCY = "EUR"
# Every account starts with this much, so no outflow in any run can ever be refused:
# 10^12 cents against outflows of at most 10^4 each.
INITIAL_BALANCE = 10**12
MAX_OUTFLOW = 10_000
PAYMENTS_SUB = "psp-gateway"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    type: str
    key: str  # the account it acts on (from_account for transfers)
    data: dict[str, Any]
    sub: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Record:
    command_id: str
    type: str
    key: bytes
    value: bytes
    headers: Headers


def account_ids(count: int) -> list[str]:
    return [f"acc-{i:06d}" for i in range(count)]


def owner_of(account: str) -> str:
    return f"owner-{account}"


def setup_commands(accounts: list[str], run: str) -> list[Command]:
    """Open every account and fund it; run before anything is timed."""
    opens = [
        Command(
            f"{run}-open-{a}",
            OPEN,
            a,
            {"account_id": a, "owner_id": owner_of(a), "currency": CURRENCY},
            "bench-ops",
            ("ops",),
        )
        for a in accounts
    ]
    funds = [
        Command(
            f"{run}-fund-{a}",
            DEPOSIT,
            a,
            {
                "account_id": a,
                "amount": INITIAL_BALANCE,
                "currency": CURRENCY,
                "external_ref": f"fund-{a}",
            },
            PAYMENTS_SUB,
            ("payments",),
        )
        for a in accounts
    ]
    return opens + funds


class Mix:
    """60% transfers, 30% deposits, 10% withdrawals over the accounts, reproducible by seed."""

    def __init__(self, accounts: list[str], seed: int, run: str) -> None:
        self._accounts = accounts
        self._rng = random.Random(seed)
        self._run = run
        self._serial = 0

    def take(self, count: int) -> list[Command]:
        return [self.next() for _ in range(count)]

    def next(self) -> Command:
        self._serial += 1
        cid = f"{self._run}-c{self._serial:08d}"
        roll = self._rng.random()
        account = self._rng.choice(self._accounts)
        if roll < 0.6:
            return self._transfer(cid, account)
        if roll < 0.9:
            return self._money(cid, DEPOSIT, account, self._rng.randint(1, 100_000))
        return self._money(cid, WITHDRAWAL, account, self._rng.randint(1, MAX_OUTFLOW))

    def _money(self, cid: str, kind: str, account: str, amount: int) -> Command:
        data = {"account_id": account, "amount": amount, "currency": CURRENCY, "external_ref": cid}
        if kind == DEPOSIT:
            return Command(cid, kind, account, data, PAYMENTS_SUB, ("payments",))
        return Command(cid, kind, account, data, owner_of(account), ("customer",))

    def _transfer(self, cid: str, source: str) -> Command:
        target = source
        while target == source:
            target = self._rng.choice(self._accounts)
        data = {
            "transfer_id": f"t-{cid}",
            "from_account": source,
            "to_account": target,
            "amount": self._rng.randint(1, MAX_OUTFLOW),
            "currency": CURRENCY,
        }
        return Command(cid, TRANSFER, source, data, owner_of(source), ("customer",))


class Signer:
    """One HS256 token per command (a `jti` makes each unique), as the worker verifies each."""

    def __init__(self, secret: str, ttl: int = 4 * 3600) -> None:
        self._secret = secret
        self._exp = int(time.time()) + ttl

    def token(self, command: Command) -> str:
        claims = {"sub": command.sub, "roles": list(command.roles), "exp": self._exp}
        return jwt.encode({**claims, "jti": command.id}, self._secret, algorithm="HS256")


def record(command: Command, signer: Signer) -> Record:
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", command.id.encode()),
        ("ce_source", b"tally-bench"),
        ("ce_type", command.type.encode()),
        ("ce_authtoken", signer.token(command).encode()),
        ("content-type", b"application/json"),
    ]
    return Record(
        command.id, command.type, command.key.encode(), orjson.dumps(command.data), headers
    )


def records(commands: list[Command], signer: Signer) -> Iterator[Record]:
    return (record(c, signer) for c in commands)
