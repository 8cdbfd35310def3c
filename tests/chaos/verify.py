"""contract §8 checked from outside: only Kafka topics and MongoDB documents, no Tally code."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.chaos.kafka_io import Seen
from tests.chaos.messages import DEPOSIT, TRANSFER, WITHDRAW, Message

Doc = dict[str, Any]
MAX_EXAMPLES = 8

# Journal kinds each outcome must leave behind, exactly once each (contract §8.2).
_KINDS = {
    "deposited": {"deposit"},
    "withdrawn": {"withdrawal"},
    "completed": {"transfer_out", "transfer_in"},
    "failed": {"transfer_out", "refund"},
}


def label(ce_type: str, data: Any) -> str:
    """`rejected:<reason>`, `failed:<reason>`, or the success type's word (`deposited`)."""
    if ce_type == "ledger.command.rejected.v1":
        return f"rejected:{data.get('reason')}"
    if ce_type == "ledger.transfer.failed.v1":
        return f"failed:{data.get('reason')}"
    parts = ce_type.split(".")
    return parts[-2] if len(parts) >= 2 else ce_type


@dataclass(slots=True)
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    info: dict[str, Any] = field(default_factory=dict)

    def fail(self, check: str, example: str) -> None:
        self.counts[check] += 1
        if len(self.examples[check]) < MAX_EXAMPLES:
            self.examples[check].append(example)

    @property
    def ok(self) -> bool:
        return not +self.counts


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the verifier reads: what was sent, the topics, the collections, the lag."""

    commands: dict[str, Message]  # command id -> message (non-poison; duplicates collapsed)
    poison: dict[str, Message]
    events: list[Seen]
    dlq: list[Seen]
    accounts: list[Doc]
    entries: list[Doc]
    transfers: list[Doc]
    lag: dict[str, int]


def verify(ev: Evidence) -> Report:
    report = Report()
    outcomes = check_outcomes(ev, report)
    check_journal(ev, outcomes, report)
    check_balances(ev, outcomes, report)
    check_transfers(ev, outcomes, report)
    check_unique_claims(ev, outcomes, report)
    check_order(ev, report)
    check_dead_letters(ev, report)
    stuck = {tp: n for tp, n in ev.lag.items() if n != 0}
    for tp, n in stuck.items():
        report.fail("lag", f"{tp} lags {n}")
    report.info["lag_total"] = sum(ev.lag.values())
    return report


# ---------------------------------------------------------------------- outcomes (§8.1)


def check_outcomes(ev: Evidence, report: Report) -> dict[str, tuple[str, Doc]]:
    """One outcome per command id; returns command id -> (label, data) of its outcome."""
    seen: dict[str, list[Seen]] = defaultdict(list)
    for record in ev.events:
        corr = record.headers.get("ce_correlationid", b"").decode()
        if corr not in ev.commands:
            report.fail("phantom_outcomes", f"outcome for unknown command {corr!r}")
            continue
        seen[corr].append(record)
    outcomes: dict[str, tuple[str, Doc]] = {}
    republished = variants = 0
    for command_id, message in ev.commands.items():
        records = seen.get(command_id, [])
        if not records:
            report.fail("lost", f"{command_id} ({message.type}) has no outcome")
            continue
        distinct = {(r.headers.get("ce_id"), r.headers.get("ce_type"), r.value) for r in records}
        ids = {r.headers.get("ce_id") for r in records}
        if len(distinct) > 1 or len(ids) > 1:
            kinds = sorted(str(r.headers.get("ce_type")) for r in records)
            report.fail("conflicting_outcomes", f"{command_id}: {len(distinct)} versions {kinds}")
        republished += len(records) - 1
        # Same id, type and data but other attributes (ce_time): allowed by contract §8.1.
        variants += len({tuple(sorted(r.headers.items())) for r in records}) > 1
        first = records[0]
        data = orjson.loads(first.value or b"null")
        got = label(first.headers.get("ce_type", b"").decode(), data)
        if got not in message.expect:
            report.fail(
                "unexpected_outcomes",
                f"{command_id} {message.type} {message.data}: got {got}, "
                f"expected one of {sorted(message.expect)}",
            )
        outcomes[command_id] = (got, data)
    report.info["outcomes_republished"] = republished
    report.info["outcomes_with_header_variants"] = variants
    return outcomes


# ---------------------------------------------------------------------- journal (§8.2)


def _expected_postings(message: Message) -> dict[str, tuple[str, int]]:
    """kind -> (account, signed amount) for each posting an accepted command leaves."""
    d = message.data
    if message.type == DEPOSIT:
        return {"deposit": (d["account_id"], d["amount"])}
    if message.type == WITHDRAW:
        return {"withdrawal": (d["account_id"], -d["amount"])}
    if message.type == TRANSFER:
        return {
            "transfer_out": (d["from_account"], -d["amount"]),
            "transfer_in": (d["to_account"], d["amount"]),
            "refund": (d["from_account"], d["amount"]),
        }
    return {}


def check_journal(ev: Evidence, outcomes: dict[str, tuple[str, Doc]], report: Report) -> None:
    by_command: dict[str, list[Doc]] = defaultdict(list)
    pairs = Counter((e.get("command_id"), e.get("kind")) for e in ev.entries)
    for (command_id, kind), n in pairs.items():
        if n > 1:
            report.fail("duplicate_effects", f"entry ({command_id}, {kind}) appears {n} times")
    for entry in ev.entries:
        by_command[entry.get("command_id", "")].append(entry)
    for command_id in by_command.keys() - outcomes.keys():
        kinds = sorted(e.get("kind", "?") for e in by_command[command_id])
        report.fail("effects_without_outcome", f"{command_id} has entries {kinds}, no outcome")
    for command_id, (got, _) in outcomes.items():
        want = _KINDS.get(got.split(":")[0], set())
        entries = by_command.get(command_id, [])
        kinds = Counter(e.get("kind") for e in entries)
        if set(kinds) != want:
            report.fail("effects_mismatch", f"{command_id} {got}: entries {dict(kinds)} != {want}")
            continue
        postings = _expected_postings(ev.commands[command_id])
        for e in entries:
            account, amount = postings.get(e["kind"], ("?", 0))
            if (e.get("account_id"), e.get("amount")) != (account, amount):
                found = (e.get("account_id"), e.get("amount"))
                report.fail(
                    "effects_mismatch", f"{command_id} {e['kind']}: {found} != {(account, amount)}"
                )


# ---------------------------------------------------------------------- money (§8.4)


def check_balances(ev: Evidence, outcomes: dict[str, tuple[str, Doc]], report: Report) -> None:
    entries: dict[str, list[Doc]] = defaultdict(list)
    for e in ev.entries:
        entries[e.get("account_id", "")].append(e)
    for account in ev.accounts:
        own = entries.get(account["_id"], [])
        total = sum(e["amount"] for e in own)
        if account["balance"] != total:
            report.fail(
                "balance_mismatches",
                f"{account['_id']}: balance {account['balance']} != journal sum {total}",
            )
        floor = -account.get("overdraft_limit", 0)
        lowest = min([account["balance"], *(e["balance_after"] for e in own)])
        if lowest < floor:
            report.fail("below_overdraft", f"{account['_id']}: {lowest} < {floor}")
        if not _journal_chains(own, account["balance"]):
            report.fail("journal_chain_breaks", f"{account['_id']}: balance_after do not chain")
    orphan = entries.keys() - {a["_id"] for a in ev.accounts}
    for account_id in sorted(orphan):
        report.fail("entries_without_account", f"entries for missing account {account_id}")
    inflow = sum(d["amount"] for got, d in outcomes.values() if got == "deposited")
    outflow = sum(d["amount"] for got, d in outcomes.values() if got == "withdrawn")
    held = sum(a["balance"] for a in ev.accounts)
    report.info["money"] = {"deposited": inflow, "withdrawn": outflow, "balances": held}
    if held != inflow - outflow:
        report.fail(
            "not_conserved", f"balances {held} != deposits {inflow} - withdrawals {outflow}"
        )


def _journal_chains(entries: list[Doc], balance: int) -> bool:
    """Whether the postings line up as one sequence from 0 to `balance`, each
    `balance_after` the previous one plus `amount` (an Euler path through the balances)."""
    if not entries:
        return balance == 0
    degree: Counter[int] = Counter()
    edges: dict[int, list[int]] = defaultdict(list)
    for e in entries:
        before, after = e["balance_after"] - e["amount"], e["balance_after"]
        degree[before] += 1
        degree[after] -= 1
        edges[before].append(after)
    expected: Counter[int] = Counter({0: 1})
    expected[balance] -= 1
    if +degree != +expected or -degree != -expected:
        return False
    reached, todo = {0}, [0]
    while todo:
        for nxt in edges.get(todo.pop(), []):
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    return set(edges) <= reached


# ---------------------------------------------------------------------- transfers, DLQ


def check_transfers(ev: Evidence, outcomes: dict[str, tuple[str, Doc]], report: Report) -> None:
    by_id = {t["_id"]: t for t in ev.transfers}
    for t in ev.transfers:
        if t.get("state") == "debited":
            report.fail("transfers_in_flight", f"transfer {t['_id']} left debited")
    for command_id, (got, data) in outcomes.items():
        kind = got.split(":")[0]
        if kind not in ("completed", "failed"):
            continue
        stored = by_id.get(data.get("transfer_id")) or {}
        found = (stored.get("state"), stored.get("command_id"))
        if found != (kind, command_id):
            report.fail(
                "transfer_state_mismatch",
                f"{command_id} {got}: transfer {data.get('transfer_id')} stored as {found}",
            )


def check_order(ev: Evidence, report: Report) -> None:
    """contract §8.3: an account's commands apply in partition order, which for one producer is
    send order: a later command's posting is never stamped before an earlier one's."""
    sent = {command_id: i for i, command_id in enumerate(ev.commands)}
    postings: dict[str, list[tuple[int, Any, str]]] = defaultdict(list)
    for e in ev.entries:
        if e.get("kind") in ("deposit", "withdrawal", "transfer_out") and e["command_id"] in sent:
            postings[e["account_id"]].append((sent[e["command_id"]], e["at"], e["command_id"]))
    for account_id, items in postings.items():
        items.sort(key=lambda item: item[0])
        for (_, at1, c1), (_, at2, c2) in itertools.pairwise(items):
            if at2 < at1:
                report.fail("order_violations", f"{account_id}: {c2} applied before {c1}")


def check_unique_claims(ev: Evidence, outcomes: dict[str, tuple[str, Doc]], report: Report) -> None:
    """contract §4: an external_ref is accepted once per account, a transfer_id once."""
    claims: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for command_id, (got, data) in outcomes.items():
        if got in ("deposited", "withdrawn"):
            claims["external_ref", data["account_id"], data["external_ref"]].append(command_id)
        elif got.split(":")[0] in ("completed", "failed"):
            claims["transfer_id", data["transfer_id"]].append(command_id)
    for claim, commands in claims.items():
        if len(commands) > 1:
            report.fail("claimed_twice", f"{'/'.join(claim)} accepted for {sorted(commands)}")


def check_dead_letters(ev: Evidence, report: Report) -> None:
    found: dict[str, list[Seen]] = defaultdict(list)
    for record in ev.dlq:
        pid = record.headers.get("chaos_poison")
        if pid is None:
            origin = record.headers.get("ce_id", b"?").decode(errors="replace")
            report.fail("unexpected_dead_letters", f"dead letter not sent as poison: {origin}")
            continue
        found[pid.decode()].append(record)
    for pid, message in ev.poison.items():
        records = found.get(pid)
        if not records:
            report.fail("poison_missing", f"{pid} ({message.poison}) not in the dlq")
            continue
        reasons = {r.headers.get("tally_error_reason", b"").decode() for r in records}
        if reasons != {message.poison}:
            report.fail("poison_wrong_reason", f"{pid}: {sorted(reasons)} != {message.poison}")
        original = {(r.key, r.value) for r in records}
        if original != {(message.key, message.value or None)} and message.value:
            report.fail("poison_altered", f"{pid}: key or value changed in the dlq")
