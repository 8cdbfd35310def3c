"""What a decided batch writes, and in which order: pure, no I/O (the pipeline does it).

ADR 4: one atomic write per account carries its new state and the outbox of the decisions
made on it; everything else follows from those records, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from models.documents import Account
from models.ids import is_command_inbox_id
from streams.batch import Plan, ref_id

Doc = dict[str, Any]
INBOX_FIELDS = ("_id", "command_id", "outcome", "leg", "at")


@dataclass(frozen=True, slots=True)
class AccountWrite:
    """The new state of one account and the outbox of the decisions made on it."""

    document: Doc
    loaded_version: int | None  # None: the account is new (opened in this batch)
    outbox: list[Doc]


@dataclass(slots=True)
class Effects:
    """Idempotent writes derived from decisions (deterministic ids; safe to repeat)."""

    entries: list[Doc] = field(default_factory=list)
    new_transfers: list[Doc] = field(default_factory=list)
    transfer_updates: list[Doc] = field(default_factory=list)
    # settlements of transfers in new_transfers (inserted settled): applied only where the
    # insert found the debited document of an earlier, interrupted flush
    settle_if_present: list[Doc] = field(default_factory=list)
    refs: list[Doc] = field(default_factory=list)


@dataclass(slots=True)
class InFlight:
    """A batch between apply() and the end of its flush(): durable in its accounts' outboxes,
    not yet (all) in the inbox. Batches decided or applied meanwhile must see its decisions,
    and an account written again meanwhile must keep its records in the new outbox."""

    records: dict[str, Doc] = field(default_factory=dict)  # inbox id -> its inbox form
    transfer_ids: set[str] = field(default_factory=set)
    ref_ids: set[str] = field(default_factory=set)
    outboxes: dict[str, list[Doc]] = field(default_factory=dict)  # account -> records written


def merged(batches: list[InFlight]) -> InFlight:
    """The batches still flushing, as one: their decisions and the ids they claim."""
    together = InFlight()
    for batch in batches:
        together.records |= batch.records
        together.transfer_ids |= batch.transfer_ids
        together.ref_ids |= batch.ref_ids
    return together


def carry(batches: list[InFlight], writes: list[AccountWrite]) -> list[AccountWrite]:
    """Keep the records of batches still flushing in the outboxes written over theirs.

    An account's outbox is what a crash recovers from (ADR 4): replacing it before its
    records are flushed would lose them. Carried records already flushed by the time of a
    crash are found in the inbox then and only republished (same event ids, §8.1)."""
    if not batches:
        return writes
    result = []
    for write in writes:
        key = write.document["_id"]
        own = {r["_id"] for r in write.outbox}
        carried = [
            r for batch in batches for r in batch.outboxes.get(key, ()) if r["_id"] not in own
        ]
        result.append(replace(write, outbox=carried + write.outbox) if carried else write)
    return result


def account_writes(plan: Plan) -> tuple[list[AccountWrite], list[AccountWrite]]:
    """The two rounds of account writes: everything but local credits, then local credits.

    An account credited locally is written once, in the second round, unless it is itself the
    source of a local credit: then the first round writes its state before the credits (so
    its debits are durable before the credits they pay for), and the second round the rest.
    """
    deferred = plan.second_round - plan.sources
    first: list[AccountWrite] = []
    for key, account in plan.touched.items():
        if key in deferred:
            continue
        outbox = plan.outboxes.get(key, [])
        if key in plan.second_round:
            account, outbox = plan.first_round[key]
        first.append(AccountWrite(state_document(account), plan.versions[key], outbox))
    written = {w.document["_id"]: w.loaded_version for w in first}
    second: list[AccountWrite] = []
    for key in plan.second_round:
        version = plan.versions[key]
        if key in written:
            version = 1 if version is None else version + 1
        second.append(AccountWrite(state_document(plan.touched[key]), version, plan.outboxes[key]))
    return first, second


def state_document(account: Account) -> Doc:
    """An account as its document stores it (the version is the write's own business)."""
    return account.model_dump(by_alias=True, exclude={"version"})


def inbox_records(plan: Plan) -> list[Doc]:
    """The inbox form of every decision of the batch."""
    terminal = {r["command_id"]: r["outcome"] for r in plan.flush if r.get("completes")}
    return [
        inbox_record(r, terminal.get(r["command_id"]) if is_command_inbox_id(r["_id"]) else None)
        for r in plan.flush
    ]


def inbox_record(record: Doc, terminal: Doc | None = None) -> Doc:
    """The inbox form of a decision; a transfer settled in the same flush gets its outcome."""
    inbox = {k: record[k] for k in INBOX_FIELDS if k in record}
    if terminal is not None and not record.get("outcome"):
        inbox |= {"outcome": terminal, "leg": None}
    return inbox


def effects(records: list[Doc]) -> Effects:
    """The idempotent writes that follow from decision records: journal, transfers, refs."""
    result = Effects()
    debited: dict[str, Doc] = {}
    for record in records:
        result.entries += record.get("entries", [])
        transfer = record.get("transfer")
        if transfer is not None and transfer["state"] == "debited":
            debited[transfer["_id"]] = transfer
        for entry in record.get("entries", []):
            if entry.get("external_ref"):
                ref = ref_id(entry["account_id"], entry["external_ref"])
                result.refs.append({"_id": ref, "command_id": entry["command_id"]})
    for record in records:
        transfer = record.get("transfer")
        if transfer is None or transfer["state"] == "debited":
            continue
        fields = {k: transfer[k] for k in ("state", "reason", "updated_at")}
        update = {"_id": transfer["_id"], "command_id": transfer["command_id"], "set": fields}
        if transfer["_id"] in debited:  # debit and settlement in one flush: insert it settled
            debited[transfer["_id"]] = {**debited[transfer["_id"]], **fields}
            result.settle_if_present.append(update)
        else:
            result.transfer_updates.append(update)
    result.new_transfers = list(debited.values())
    return result
