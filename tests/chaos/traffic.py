"""Seeded chaos traffic: commands with the outcomes they may get, duplicates and poison."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from tests.chaos.messages import (
    CLOSE,
    DEPOSIT,
    FREEZE,
    LIMITS,
    OPEN,
    TRANSFER,
    UNFREEZE,
    WITHDRAW,
    Message,
    binary,
)
from tests.chaos.poison import poison_message

# Outcome labels (see verify.label): a success type's last word, or rejected:/failed:<reason>.
FUNDS = frozenset({"rejected:insufficient_funds", "rejected:limit_exceeded"})
HUGE = 10**13  # more than every deposit of a run together: always insufficient_funds
TOKEN_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    owner: str
    currency: str = "EUR"
    overdraft: int = 0
    daily: int | None = None


@dataclass(slots=True)
class Population:
    """The accounts of a run, by the role they play in the traffic."""

    regular: list[Account] = field(default_factory=list)
    usd: list[Account] = field(default_factory=list)
    frozen: list[Account] = field(default_factory=list)
    closed: list[Account] = field(default_factory=list)
    toggled: list[Account] = field(default_factory=list)  # frozen and unfrozen during the run

    @property
    def inflow_ok(self) -> list[Account]:
        """EUR accounts that always accept a deposit or a transfer in."""
        return self.regular + self.frozen + self.toggled

    @property
    def all(self) -> list[Account]:
        return self.regular + self.usd + self.frozen + self.closed + self.toggled


class Tokens:
    """JWTs minted with the run's secret, plus tokens that must fail verification."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._cache: dict[tuple[str, str], bytes] = {}

    def for_(self, sub: str, role: str) -> bytes:
        if (sub, role) not in self._cache:
            claims = {"sub": sub, "roles": [role], "exp": int(time.time()) + TOKEN_TTL_S}
            self._cache[sub, role] = jwt.encode(claims, self._secret, algorithm="HS256").encode()
        return self._cache[sub, role]

    def bad(self, rng: random.Random) -> bytes | None:
        expired = {"sub": "ops-1", "roles": ["ops"], "exp": int(time.time()) - 60}
        forged = {"sub": "ops-1", "roles": ["ops"], "exp": int(time.time()) + 3600}
        return rng.choice(
            [
                jwt.encode(expired, self._secret, algorithm="HS256").encode(),
                jwt.encode(forged, "x" * 40, algorithm="HS256").encode(),
                b"not-a-jwt",
                None,  # no authtoken at all
            ]
        )


class Traffic:
    """Builds the run's messages from a seed; nothing here touches Kafka."""

    def __init__(self, seed: int, commands: int, secret: str, accounts: int = 120) -> None:
        self.rng = random.Random(seed)
        self.tokens = Tokens(secret)
        self.commands = commands
        self.population = _population(self.rng, accounts)
        self._n = 0
        self._probes = 0
        self._deposit_refs: list[tuple[Account, str]] = []
        self._transfer_ids: list[tuple[Account, str]] = []

    # ------------------------------------------------------------------ building blocks

    def _id(self, prefix: str = "c") -> str:
        self._n += 1
        return f"{prefix}{self._n:06d}"

    def command(
        self,
        ctype: str,
        data: Any,
        expect: frozenset[str] | set[str],
        *,
        key: str | None,
        token: bytes | None,
        prefix: str = "c",
    ) -> Message:
        command_id = self._id(prefix)
        k, value, headers = binary(command_id, ctype, data, token, key)
        return Message(command_id, k, value, headers, frozenset(expect), ctype, data)

    def ops(self) -> bytes:
        return self.tokens.for_("ops-1", "ops")

    def payments(self) -> bytes:
        return self.tokens.for_("psp-1", "payments")

    # ------------------------------------------------------------------ phases

    def setup(self) -> list[Message]:
        """Open every account; freeze and close the ones that play those roles."""
        out = []
        for a in self.population.all:
            data = {
                "account_id": a.id,
                "owner_id": a.owner,
                "currency": a.currency,
                "overdraft_limit": a.overdraft,
                "daily_outflow_limit": a.daily,
            }
            out.append(self.command(OPEN, data, {"opened"}, key=a.id, token=self.ops()))
        for a in self.population.frozen:
            data = {"account_id": a.id, "reason": "chaos"}
            out.append(self.command(FREEZE, data, {"frozen"}, key=a.id, token=self.ops()))
        for a in self.population.closed:
            data = {"account_id": a.id}
            out.append(self.command(CLOSE, data, {"closed"}, key=a.id, token=self.ops()))
        return out

    def main(self, duplicate_rate: float = 0.05, poison_rate: float = 0.01) -> list[Message]:
        """The mixed traffic, with duplicate sends (same id, same bytes) and poison woven in."""
        base = [self._one() for _ in range(self.commands)]
        out: list[Message] = []
        later: dict[int, list[Message]] = {}
        for i, message in enumerate(base):
            out.append(message)
            out += later.pop(i, [])
            if self.rng.random() < duplicate_rate:
                at = i + self.rng.choice([0, 1, 5, 50, 500, 3000])
                later.setdefault(min(at, len(base) - 1), []).append(message)
            if self.rng.random() < poison_rate:
                out.append(self.poison())
        for rest in later.values():
            out += rest
        return out

    # ------------------------------------------------------------------ the mix

    def _one(self) -> Message:
        makers = [
            (30, self._deposit),
            (16, self._withdrawal),
            (20, self._transfer),
            (5, self._transfer_to_trouble),
            (4, self._deposit_to_trouble),
            (3, self._toggle),
            (2, self._customer_withdrawal),
            (2, self._duplicate_ref),
            (1, self._duplicate_transfer),
            (2, self._unknown_type),
            (3, self._bad_token),
            (3, self._invalid),
            (2, self._forbidden),
            (1, self._same_account),
            (1, self._outflow_from_frozen),
            (1, self._huge_withdrawal),
        ]
        weights = [w for w, _ in makers]
        (maker,) = self.rng.choices([m for _, m in makers], weights)
        return maker()

    def _deposit(self, account: Account | None = None) -> Message:
        a = account or self.rng.choice(self.population.inflow_ok)
        ref = f"ref-{self._n + 1}"
        data = {
            "account_id": a.id,
            "amount": self.rng.randint(100, 100_000),
            "currency": "EUR",
            "external_ref": ref,
        }
        self._deposit_refs.append((a, ref))
        token = self.rng.choice([self.ops(), self.payments()])
        return self.command(DEPOSIT, data, {"deposited"}, key=a.id, token=token)

    def _withdrawal_data(self, a: Account, amount: int) -> dict[str, Any]:
        return {
            "account_id": a.id,
            "amount": amount,
            "currency": a.currency,
            "external_ref": f"wref-{self._n + 1}",
        }

    def _withdrawal(self) -> Message:
        a = self.rng.choice(self.population.regular + self.population.toggled)
        data = self._withdrawal_data(a, self.rng.randint(1, 60_000))
        expect = {"withdrawn", *FUNDS}
        if a in self.population.toggled:
            expect.add("rejected:account_frozen")
        token = self.rng.choice([self.ops(), self.payments()])
        return self.command(WITHDRAW, data, expect, key=a.id, token=token)

    def _huge_withdrawal(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data = self._withdrawal_data(a, HUGE)
        return self.command(
            WITHDRAW, data, {"rejected:insufficient_funds"}, key=a.id, token=self.ops()
        )

    def _customer_withdrawal(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data = self._withdrawal_data(a, self.rng.randint(1, 20_000))
        token = self.tokens.for_(a.owner, "customer")
        return self.command(WITHDRAW, data, {"withdrawn", *FUNDS}, key=a.id, token=token)

    def _transfer_data(self, src: Account, dst: str, amount: int, tid: str) -> dict[str, Any]:
        return {
            "transfer_id": tid,
            "from_account": src.id,
            "to_account": dst,
            "amount": amount,
            "currency": src.currency,
            "memo": "chaos",
        }

    def _transfer(self, dst: Account | None = None, ok: str = "completed") -> Message:
        src = self.rng.choice(self.population.regular)
        target = dst or self.rng.choice([a for a in self.population.inflow_ok if a != src][:200])
        tid = f"t{self._n + 1:06d}"
        expect = frozenset({ok, *FUNDS})
        data = self._transfer_data(src, target.id, self.rng.randint(1, 40_000), tid)
        token = self.rng.choice([self.ops(), self.tokens.for_(src.owner, "customer")])
        self._transfer_ids.append((src, tid))
        return self.command(TRANSFER, data, expect, key=src.id, token=token)

    def _transfer_to_trouble(self) -> Message:
        pop = self.population
        kind = self.rng.choice(["ghost", "closed", "usd", "frozen"])
        if kind == "ghost":
            ghost = Account(f"ghost{self.rng.randint(1, 999):03d}", "nobody")
            return self._transfer(ghost, "failed:account_not_found")
        if kind == "closed":
            return self._transfer(self.rng.choice(pop.closed), "failed:account_closed")
        if kind == "usd":
            return self._transfer(self.rng.choice(pop.usd), "failed:currency_mismatch")
        return self._transfer(self.rng.choice(pop.frozen), "completed")

    def _deposit_to_trouble(self) -> Message:
        pop = self.population
        kind = self.rng.choice(["ghost", "closed", "usd"])
        a = {
            "ghost": Account(f"ghost{self.rng.randint(1, 999):03d}", "nobody"),
            "closed": self.rng.choice(pop.closed),
            "usd": self.rng.choice(pop.usd),
        }[kind]
        expect = {
            "ghost": "rejected:account_not_found",
            "closed": "rejected:account_closed",
            "usd": "rejected:currency_mismatch",
        }[kind]
        data = {"account_id": a.id, "amount": 500, "currency": "EUR", "external_ref": "trouble"}
        return self.command(DEPOSIT, data, {expect}, key=a.id, token=self.payments())

    def _toggle(self) -> Message:
        a = self.rng.choice(self.population.toggled)
        kind = self.rng.choice([FREEZE, UNFREEZE, LIMITS])
        if kind == FREEZE:
            data: dict[str, Any] = {"account_id": a.id, "reason": "chaos"}
            expect = {"frozen", "rejected:invalid_state"}
        elif kind == UNFREEZE:
            data = {"account_id": a.id}
            expect = {"unfrozen", "rejected:invalid_state"}
        else:  # only ever raised to one value, so the overdraft floor check stays simple
            data = {"account_id": a.id, "overdraft_limit": a.overdraft}
            expect = {"limits_changed"}
        return self.command(kind, data, expect, key=a.id, token=self.ops())

    def _duplicate_ref(self) -> Message:
        if not self._deposit_refs:
            return self._deposit()
        a, ref = self.rng.choice(self._deposit_refs[-500:])
        data = {"account_id": a.id, "amount": 777, "currency": "EUR", "external_ref": ref}
        expect = {"rejected:duplicate_external_ref"}
        return self.command(DEPOSIT, data, expect, key=a.id, token=self.payments())

    def _duplicate_transfer(self) -> Message:
        if not self._transfer_ids:
            return self._transfer()
        src, tid = self.rng.choice(self._transfer_ids[-500:])
        data = self._transfer_data(src, self.rng.choice(self.population.regular).id, 5, tid)
        # The first may have been refused (funds), leaving the transfer id free.
        expect = {"rejected:duplicate_transfer", "completed", *FUNDS, "rejected:same_account"}
        return self.command(TRANSFER, data, expect, key=src.id, token=self.ops())

    def _unknown_type(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data = {"account_id": a.id, "amount": 5}
        expect = {"rejected:unsupported_type"}
        return self.command("ledger.teleport.v1", data, expect, key=a.id, token=self.ops())

    def _bad_token(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data = {"account_id": a.id, "amount": 5, "currency": "EUR", "external_ref": "x"}
        token = self.tokens.bad(self.rng)
        return self.command(DEPOSIT, data, {"rejected:unauthenticated"}, key=a.id, token=token)

    def _invalid(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data: dict[str, Any] = {
            "account_id": a.id,
            "amount": 100,
            "currency": "EUR",
            "external_ref": "inv",
        }
        broken = self.rng.choice(["string", "zero", "float", "extra", "missing", "bad_id"])
        if broken == "string":
            data["amount"] = "100"
        elif broken == "zero":
            data["amount"] = 0
        elif broken == "float":
            data["amount"] = 1.5
        elif broken == "extra":
            data["bogus"] = True
        elif broken == "missing":
            del data["currency"]
        else:
            data["account_id"] = "bad id!"
        return self.command(DEPOSIT, data, {"rejected:invalid"}, key=a.id, token=self.ops())

    def _forbidden(self) -> Message:
        a = self.rng.choice(self.population.regular)
        other = self.tokens.for_("stranger", "customer")
        expect = {"rejected:forbidden"}
        kind = self.rng.choice(["psp_transfer", "stranger_withdrawal", "customer_freeze"])
        if kind == "psp_transfer":
            b = self.rng.choice(self.population.regular)
            data = self._transfer_data(a, b.id, 10, f"tf{self._n + 1}")
            return self.command(TRANSFER, data, expect, key=a.id, token=self.payments())
        if kind == "stranger_withdrawal":
            data = self._withdrawal_data(a, 10)
            return self.command(WITHDRAW, data, expect, key=a.id, token=other)
        data = {"account_id": a.id, "reason": "mine"}
        token = self.tokens.for_(a.owner, "customer")
        return self.command(FREEZE, data, expect, key=a.id, token=token)

    def _same_account(self) -> Message:
        a = self.rng.choice(self.population.regular)
        data = self._transfer_data(a, a.id, 10, f"ts{self._n + 1}")
        return self.command(TRANSFER, data, {"rejected:same_account"}, key=a.id, token=self.ops())

    def _outflow_from_frozen(self) -> Message:
        a = self.rng.choice(self.population.frozen)
        expect = {"rejected:account_frozen"}
        if self.rng.random() < 0.5:
            return self.command(
                WITHDRAW, self._withdrawal_data(a, 5), expect, key=a.id, token=self.ops()
            )
        b = self.rng.choice(self.population.regular)
        data = self._transfer_data(a, b.id, 5, f"tz{self._n + 1}")
        return self.command(TRANSFER, data, expect, key=a.id, token=self.ops())

    # ------------------------------------------------------------------ probes and poison

    def probe(self, key: str) -> Message:
        """A deposit to an account that never exists: always account_not_found."""
        self._probes += 1
        data = {"account_id": key, "amount": 1, "currency": "EUR", "external_ref": "probe"}
        expect = {"rejected:account_not_found"}
        return self.command(DEPOSIT, data, expect, key=key, token=self.payments(), prefix="p")

    def poison(self) -> Message:
        return poison_message(self.rng, self._id("x"))


def _population(rng: random.Random, regular: int) -> Population:
    pop = Population()
    for i in range(1, regular + 1):
        overdraft = rng.choice([0, 0, 0, 5_000])
        daily = rng.choice([None, None, None, None, 60_000])
        pop.regular.append(Account(f"a{i:04d}", f"owner{i:04d}", "EUR", overdraft, daily))
    pop.usd = [Account(f"usd{i:02d}", f"uowner{i:02d}", "USD") for i in range(1, 9)]
    pop.frozen = [Account(f"frz{i:02d}", f"fowner{i:02d}") for i in range(1, 6)]
    pop.closed = [Account(f"cls{i:02d}", f"cowner{i:02d}") for i in range(1, 6)]
    pop.toggled = [Account(f"tog{i:02d}", f"towner{i:02d}", overdraft=10_000) for i in range(1, 6)]
    return pop
