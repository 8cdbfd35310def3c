"""What a decided batch writes, and in which order: pure, no I/O (the pipeline does it).

ADR 4: one atomic write per account carries its new state and the outbox of the decisions
made on it; everything else follows from those records, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from models.documents import Account
from models.ids import is_command_inbox_id
from streams.batch import Plan, note_claims, ref_id
from streams.decisions import DecisionRecord

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccountWrite:
    """The new state of one account and the outbox of the decisions made on it, as the store
    port takes them: documents (DecisionRecord.outbox_document)."""

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

    records: dict[str, DecisionRecord] = field(default_factory=dict)  # by inbox id: inbox form
    transfer_ids: set[str] = field(default_factory=set)
    ref_ids: set[str] = field(default_factory=set)
    # account -> the records it wrote there, without those it carried for an earlier batch
    outboxes: dict[str, list[DecisionRecord]] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan, inbox: list[DecisionRecord]) -> InFlight:
        """An applied batch; `inbox`: the inbox form of its decisions (inbox_records)."""
        batch = cls({r.id: r for r in inbox})
        for record in plan.flush:
            note_claims(record, batch.ref_ids, batch.transfer_ids)
        # every account it touched is written, in one round or both: the last write's outbox
        batch.outboxes = {key: plan.outboxes.get(key, []) for key in plan.touched}
        return batch


def merged(batches: list[InFlight]) -> InFlight:
    """The batches still flushing, as one: their decisions and the ids they claim."""
    together = InFlight()
    for batch in batches:
        together.records |= batch.records
        together.transfer_ids |= batch.transfer_ids
        together.ref_ids |= batch.ref_ids
    return together


def carry(
    batches: Sequence[InFlight], key: str, outbox: list[DecisionRecord]
) -> list[DecisionRecord]:
    """Account `key`'s outbox, led by the records batches still flushing wrote there.

    An account's outbox is what a crash recovers from (ADR 4): replacing it before its
    records are flushed would lose them. Carried records already flushed by the time of a
    crash are found in the inbox then and only republished (same event ids, §8.1)."""
    if not batches:
        return outbox
    own = {r.id for r in outbox}
    carried = [r for batch in batches for r in batch.outboxes.get(key, ()) if r.id not in own]
    return carried + outbox if carried else outbox


def account_writes(
    plan: Plan, flushing: Sequence[InFlight] = ()
) -> tuple[list[AccountWrite], list[AccountWrite]]:
    """The two rounds of account writes: everything but local credits, then local credits;
    each outbox keeps the records of the batches still `flushing` (carry).

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
        first.append(_write(account, plan.versions[key], carry(flushing, key, outbox)))
    written = {w.document["_id"]: w.loaded_version for w in first}
    second: list[AccountWrite] = []
    for key in plan.second_round:
        version = plan.versions[key]
        if key in written:
            version = 1 if version is None else version + 1
        outbox = carry(flushing, key, plan.outboxes[key])
        second.append(_write(plan.touched[key], version, outbox))
    return first, second


def _write(account: Account, version: int | None, outbox: list[DecisionRecord]) -> AccountWrite:
    return AccountWrite(state_document(account), version, [r.outbox_document() for r in outbox])


def state_document(account: Account) -> Doc:
    """An account as its document stores it (the version is the write's own business)."""
    return account.model_dump(by_alias=True, exclude={"version"})


def inbox_records(plan: Plan) -> list[DecisionRecord]:
    """Every decision of the batch as the inbox will keep it (DecisionRecord.inbox_document)."""
    terminal = {r.command_id: r.outcome for r in plan.flush if r.completes}
    return [_inbox_form(r, terminal.get(r.command_id)) for r in plan.flush]


def _inbox_form(record: DecisionRecord, terminal: Doc | None) -> DecisionRecord:
    # A transfer whose saga ended in the same flush: its command's record gets the outcome it
    # ended with, and no leg a duplicate would send again.
    if terminal is None or record.outcome or not is_command_inbox_id(record.id):
        return record
    return replace(record, outcome=terminal, leg=None)


def effects(records: list[DecisionRecord]) -> Effects:
    """The idempotent writes that follow from decision records: journal, transfers, refs."""
    result = Effects()
    debited: dict[str, Doc] = {}
    for record in records:
        entries = record.entries or ()
        result.entries += entries
        transfer = record.transfer
        if transfer is not None and transfer["state"] == "debited":
            debited[transfer["_id"]] = transfer
        for entry in entries:
            if entry.get("external_ref"):
                ref = ref_id(entry["account_id"], entry["external_ref"])
                result.refs.append({"_id": ref, "command_id": entry["command_id"]})
    for record in records:
        transfer = record.transfer
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
