"""Deciding one batch in memory, in partition order, with the pure handlers; no I/O here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from handlers.decision import Context, Decision, Facts, Rejection
from handlers.ledger import decide, decide_leg
from handlers.legs import Journal, journal_of, own_transfer, untrusted
from models.commands import Deposit, Transfer, Withdrawal
from models.documents import Account, Entry, TransferLeg, TransferRecord, TransferState
from models.events import CommandRejected
from models.ids import leg_inbox_id
from streams.decisions import DecisionRecord
from streams.intake import CommandItem, DeadItem, LegItem, record_day
from streams.outcomes import StoredEvent, stored_event

Doc = dict[str, Any]
# Fields of an account document that are Tally's bookkeeping, not contract §9 state.
INTERNAL_FIELDS = ("outbox",)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the batch read from MongoDB before deciding."""

    accounts: dict[str, Doc]
    inbox: dict[str, DecisionRecord]  # final decisions, by inbox id
    transfer_ids: set[str]
    ref_ids: set[str]
    # account id -> outbox records not yet flushed (no inbox record): a crash interrupted them
    unflushed: dict[str, list[DecisionRecord]]
    # transfer id -> stored document, for the batch's legs: a leg must match its debit (§8.8)
    leg_transfers: dict[str, Doc] = field(default_factory=dict)
    # For legs whose transfer document is missing or another command's (a transfer id reused
    # across partitions, ADR 4), checked against the journal instead: the entries of their
    # commands (`journal_ids`) by id, and their source accounts' currencies by account id.
    leg_entries: dict[str, Doc] = field(default_factory=dict)
    leg_sources: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    """Everything one batch will write and publish, in the order the pipeline does it."""

    first_inbox: list[DecisionRecord] = field(default_factory=list)  # touching no account
    outboxes: dict[str, list[DecisionRecord]] = field(default_factory=dict)  # by account id
    touched: dict[str, Account] = field(default_factory=dict)  # account id -> new state
    versions: dict[str, int | None] = field(default_factory=dict)  # as loaded; None: new
    flush: list[DecisionRecord] = field(default_factory=list)  # effects to (re)apply
    republish: list[DecisionRecord] = field(default_factory=list)  # already final
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (type, reason|"accepted")
    timestamps: list[float] = field(default_factory=list)  # record timestamps of outcomes
    dead: list[DeadItem] = field(default_factory=list)  # legs of no debit in flight: untrusted
    # Local settlement (BatchDecider.settle_locally): credit legs decided in this batch on
    # destinations this worker owns. Their accounts are written in a second round, after the
    # debited sources are durable; `first_round` is the state and outbox each account had
    # before the credits, which is what the first round writes.
    settled: dict[str, DecisionRecord] = field(default_factory=dict)  # by transfer command id
    second_round: set[str] = field(default_factory=set)  # accounts credited locally
    sources: set[str] = field(default_factory=set)  # their debited sources: first round
    first_round: dict[str, tuple[Account, list[DecisionRecord]]] = field(default_factory=dict)

    def adopt(self, stored: Mapping[str, DecisionRecord]) -> None:
        """Publish the outcome and leg of the account-less decisions another worker made first
        (their inbox records won, Pipeline.apply) instead of this batch's own."""
        won = {
            r.id: replace(r, outcome=stored[r.id].outcome, leg=stored[r.id].leg)
            for r in self.first_inbox
            if r.id in stored
        }
        self.first_inbox = [won.get(r.id, r) for r in self.first_inbox]
        self.flush = [won.get(r.id, r) for r in self.flush]
        # a duplicate later in the batch republishes the same decision
        self.republish = [won.get(r.id, r) for r in self.republish]


def ref_id(account_id: str, external_ref: str) -> str:
    return f"{account_id}/{external_ref}"


def note_claims(record: DecisionRecord, refs: set[str], transfers: set[str]) -> None:
    """Adds the external refs and the transfer id a decision record claims."""
    for entry in record.entries or ():
        if entry.get("external_ref"):
            refs.add(ref_id(entry["account_id"], entry["external_ref"]))
    if record.transfer is not None:
        transfers.add(record.transfer["_id"])


class BatchDecider:
    """Applies a batch's items to in-memory state; produces a Plan."""

    def __init__(
        self,
        loaded: Loaded,
        *,
        now: datetime,
        source: str,
        currencies: frozenset[str],
    ) -> None:
        self._loaded = loaded
        self._now = now
        self._source = source
        self._currencies = currencies
        self._state: dict[str, Account | None] = {
            key: Account.model_validate(_state_fields(doc)) for key, doc in loaded.accounts.items()
        }
        self._decided: dict[str, DecisionRecord] = {}
        self._refs = set(loaded.ref_ids)
        self._transfers = set(loaded.transfer_ids)
        self._legs: list[tuple[DecisionRecord, TransferLeg, Any]] = []  # fresh credits: phase 2
        # transfer id -> the transfer as the batch's legs left it: settled is no longer in flight
        self._leg_transfers: dict[str, TransferRecord] = {}
        self._leg_entries = {k: Entry.model_validate(d) for k, d in loaded.leg_entries.items()}
        # transfer command id -> how a leg of this batch ended its saga, whatever its document
        self._ended: dict[str, TransferState] = {}
        self.plan = Plan()
        self._adopt_unflushed_outboxes()

    def _adopt_unflushed_outboxes(self) -> None:
        # An outbox item without an inbox record was decided and applied to its account, but
        # a crash may have stopped its journal, transfer, publication: finish it now.
        for key, pending in self._loaded.unflushed.items():
            for record in pending:
                self._decided[record.id] = record
                self.plan.flush.append(record)
                self._note_unflushed_claims(record)
            if pending:
                self.plan.outboxes[key] = list(pending)

    def _note_unflushed_claims(self, record: DecisionRecord) -> None:
        # Its external_ref and transfer_id are not in their collections yet (the crash came
        # before the flush), yet they are taken: a reuse in this batch must be refused.
        note_claims(record, self._refs, self._transfers)

    def apply(self, item: CommandItem | LegItem) -> None:
        inbox_id = item.inbox_id
        final = self._loaded.inbox.get(inbox_id) or self._decided.get(inbox_id)
        if final is not None:
            self.plan.republish.append(final)
            return
        if isinstance(item, LegItem):
            self._decide_leg(item)
        elif isinstance(item.admission, Rejection):
            self._reject(item, item.admission, account_key=None)
        else:
            self._decide_command(item)

    def _context(
        self, command_id: str, message_id: str, record: Any, traceparent: str | None
    ) -> Context:
        return Context(
            command_id=command_id,
            message_id=message_id,
            now=self._now,
            day=record_day(record),
            currencies=self._currencies,
            traceparent=traceparent,
        )

    def _decide_command(self, item: CommandItem) -> None:
        assert not isinstance(item.admission, Rejection)
        command, principal = item.admission
        key = command.account_key
        facts = Facts(
            account=self._state.get(key),
            external_ref_used=self._ref_used(command),
            transfer_id_used=isinstance(command, Transfer)
            and command.transfer_id in self._transfers,
        )
        trace = item.event.attributes.get("traceparent")
        ctx = self._context(item.event.id, item.event.id, item.record, trace)
        result = decide(command, principal, facts, ctx)
        if isinstance(result, Rejection):
            self._reject(item, result, account_key=key)
            return
        self._note_claims(command)
        record = self._record(item.inbox_id, ctx, result)
        self._place(key, facts.account, result, record)
        if result.leg is not None:
            self._legs.append((record, result.leg, item.record))
        self.plan.accepted.append((item.event.type, "accepted"))
        self.plan.timestamps.append(item.record.timestamp)

    def _decide_leg(self, item: LegItem) -> None:
        # After the inbox dedupe (apply): a redelivered leg is a duplicate, not untrusted.
        leg = item.leg
        stored = self._leg_transfer(leg.transfer_id)
        transfer = own_transfer(leg, stored)
        journal = None if transfer is not None else self._journal(leg)
        detail = untrusted(leg, stored, journal)
        if detail is not None:
            # No inbox record: a forged copy must not pre-empt the genuine leg's message id.
            self.plan.dead.append(DeadItem(item.record, "untrusted_leg", detail))
            return
        key = leg.account_key
        facts = Facts(account=self._state.get(key), transfer=transfer)
        ctx = self._context(leg.command_id, leg.message_id, item.record, leg.traceparent)
        result = decide_leg(leg, facts, ctx)
        if result.transfer is not None:  # settled: a later leg of it in this batch is not
            self._ended[leg.command_id] = result.transfer.state
            if transfer is not None:  # never onto another command's document
                self._leg_transfers[leg.transfer_id] = result.transfer
        record = self._record(item.inbox_id, ctx, result, completes=result.outcome is not None)
        self._place(key, facts.account, result, record)

    def _leg_transfer(self, transfer_id: str) -> TransferRecord | None:
        if transfer_id not in self._leg_transfers:
            doc = self._loaded.leg_transfers.get(transfer_id)
            if doc is None:
                return None
            self._leg_transfers[transfer_id] = TransferRecord.model_validate(doc)
        return self._leg_transfers[transfer_id]

    def _journal(self, leg: TransferLeg) -> Journal:
        currency = self._loaded.leg_sources.get(leg.from_account)
        ended = self._ended.get(leg.command_id)
        return journal_of(leg.command_id, self._leg_entries, currency, ended)

    def settle_locally(self, local: Callable[[str], bool]) -> None:
        """Phase 2: credit, in this batch, the transfers whose destination this worker owns.

        Only legs of transfers decided fresh in this batch (never adopted ones, whose leg may
        already be on its way), and only onto an account that exists: a missing destination is
        an account-less decision, which the Kafka leg handles. The credited accounts are written
        after the first round (the debits) is durable, so a credit never exists without its
        debit; an account with nothing to do with a local credit is written once, as before.
        """
        for source_record, leg, kafka_record in self._legs:
            account = self._state.get(leg.to_account)
            if account is not None and local(leg.to_account):
                self._settle(source_record, leg, kafka_record, account)
        self._legs.clear()

    def _settle(
        self, source_record: DecisionRecord, leg: TransferLeg, kafka_record: Any, account: Account
    ) -> None:
        """Decide one credit leg here, on `account`, its destination."""
        plan, destination = self.plan, leg.to_account
        # the trace the Kafka leg would carry: the transfer's
        ctx = self._context(leg.command_id, leg.message_id, kafka_record, leg.traceparent)
        result = decide_leg(leg, Facts(account=account), ctx)
        inbox_id = leg_inbox_id(leg.command_id, leg.leg)
        record = self._record(inbox_id, ctx, result, completes=result.outcome is not None)
        if destination in plan.touched and destination not in plan.first_round:
            # as the account stood before its first local credit: what round 1 writes
            outbox = list(plan.outboxes.get(destination, []))
            plan.first_round[destination] = (plan.touched[destination], outbox)
        self._place(destination, account, result, record)
        plan.settled[source_record.command_id] = record
        plan.second_round.add(destination)
        plan.sources.add(leg.from_account)

    def _ref_used(self, command: object) -> bool:
        if isinstance(command, Deposit | Withdrawal):
            return ref_id(command.account_id, command.external_ref) in self._refs
        return False

    def _note_claims(self, command: object) -> None:
        if isinstance(command, Deposit | Withdrawal):
            self._refs.add(ref_id(command.account_id, command.external_ref))
        if isinstance(command, Transfer):
            self._transfers.add(command.transfer_id)

    def _place(
        self, key: str, before: Account | None, result: Decision, record: DecisionRecord
    ) -> None:
        self._decided[record.id] = record
        self.plan.flush.append(record)
        if before is None and result.account is None:
            self.plan.first_inbox.append(record)
            return
        if result.account is not None:
            self._state[key] = result.account
            self.plan.touched[key] = result.account
        elif before is not None:
            self.plan.touched.setdefault(key, before)
        loaded = self._loaded.accounts.get(key)
        self.plan.versions[key] = None if loaded is None else loaded["version"]
        self.plan.outboxes.setdefault(key, []).append(record)

    def _reject(self, item: CommandItem, rejection: Rejection, account_key: str | None) -> None:
        subject = account_key or _fallback_subject(item)
        data = CommandRejected(
            command_id=item.event.id,
            command_type=item.event.type,
            reason=rejection.reason,
            detail=rejection.detail,
            errors=list(rejection.errors),
        )
        event = self._event(
            data, subject, item.event.id, item.event.id, item.event.attributes.get("traceparent")
        )
        # no entries field at all: a rejection moves nothing
        record = DecisionRecord(
            id=item.inbox_id, command_id=item.event.id, outcome=event, leg=None, at=self._now
        )
        self.plan.accepted.append((item.event.type, rejection.reason))
        self.plan.timestamps.append(item.record.timestamp)
        before = self._state.get(account_key) if account_key else None
        # A rejection may depend on the account's state, so it is kept in that account's
        # outbox, atomically with the state it was decided against (contract §8.1).
        self._place(account_key or "", before, Decision(account=None, outcome=None), record)

    def _record(
        self, inbox_id: str, ctx: Context, result: Decision, *, completes: bool = False
    ) -> DecisionRecord:
        event = None
        if result.outcome is not None:
            event = self._event(
                result.outcome,
                result.outcome.subject,
                ctx.command_id,
                ctx.message_id,
                ctx.traceparent,
            )
        # a leg carries the trace itself: the handlers made it with the context's traceparent
        leg = result.leg.model_dump(mode="json") if result.leg is not None else None
        transfer = result.transfer
        return DecisionRecord(
            id=inbox_id,
            command_id=ctx.command_id,
            outcome=event,
            leg=leg,
            at=self._now,
            entries=tuple(e.model_dump(by_alias=True) for e in result.entries),
            transfer=None if transfer is None else transfer.model_dump(by_alias=True),
            completes=completes,
        )

    def _event(
        self, data: Any, subject: str | None, command_id: str, causation_id: str, trace: str | None
    ) -> StoredEvent:
        return stored_event(
            data,
            data.TYPE,
            subject=subject,
            command_id=command_id,
            causation_id=causation_id,
            source=self._source,
            time=self._now,
            traceparent=trace,
        )


def _state_fields(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k not in INTERNAL_FIELDS}


def _fallback_subject(item: CommandItem) -> str | None:
    """A rejected command's account: from its data if readable, else the record key."""
    data = item.event.data
    if isinstance(data, dict):
        for name in ("account_id", "from_account"):
            value = data.get(name)
            if isinstance(value, str) and 0 < len(value) <= 64:
                return value
    key = item.record.key
    try:
        return key.decode() if key else None
    except UnicodeDecodeError:
        return None
