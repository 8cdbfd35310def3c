"""One batch end to end: decode, load, decide, persist atomically per account, publish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from handlers.legs import journal_ids
from models.commands import Deposit, Transfer, Withdrawal
from models.documents import TransferLeg
from models.ids import command_inbox_id
from streams import metrics
from streams.batch import BatchDecider, Doc, Loaded, Plan, ref_id
from streams.batch_trace import UNTRACED, UNTRACED_BATCH, BatchTrace, Tracing
from streams.decisions import DecisionRecord
from streams.errors import TallyError
from streams.intake import (
    CommandItem,
    DeadItem,
    Decoder,
    Item,
    LegItem,
)
from streams.outbound import Outbound, observe
from streams.ports import Store
from streams.publish import KafkaPublisher, dead_letter
from streams.settings import Settings
from streams.store import outbox_records
from streams.writes import InFlight, account_writes, effects, inbox_records, merged

T = TypeVar("T")


class StaleDecisionError(TallyError):
    """A batch decided before a failure or a rebalance emptied the caches: decide it again."""


@dataclass(slots=True)
class Decided:
    """A batch decided in memory (`Pipeline.decide`); nothing of it is written yet."""

    plan: Plan
    dead: list[DeadItem]
    fetched_at: float
    size: int
    generation: int  # Pipeline.generation when decided; apply() refuses another one
    inbox: list[DecisionRecord] = field(default_factory=list)  # inbox form, by apply()
    in_flight: InFlight | None = None  # set by apply(), until flush() succeeds
    trace: BatchTrace = UNTRACED_BATCH  # its spans, ended by flush() or a failure (ADR 9)


THREAD_MIN_RECORDS = 200  # batches this large are decoded and decided in a thread
_CACHED_ACCOUNTS = 100_000  # documents kept by the account cache, oldest written first out


class Pipeline:
    """Processes one batch of records; raises on a transient failure (the caller retries)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publisher: KafkaPublisher,
        decoder: Decoder,
        local: Callable[[str], bool] | None = None,
        tracing: Tracing = UNTRACED,
    ) -> None:
        self._settings = settings
        self._tracing = tracing
        self._store = store
        self._publisher = publisher
        self._decoder = decoder
        self._outbound = Outbound(settings)
        # Whether this worker owns an account's partitions now: a transfer to such an account
        # is credited in the same batch instead of through ledger.transfers (local settlement).
        self._local: Callable[[str], bool] = local or _nowhere
        # account id -> version whose outbox this process has fully flushed: saves a lookup.
        self._flushed: dict[str, int] = {}
        # account id -> its document as this process last wrote it: saves reading the accounts
        # this worker owns. A stale entry cannot do harm: every account write is version-checked,
        # so it fails (ConflictError), and any failure empties the cache before a retry.
        self._accounts: dict[str, Doc] = {}
        # Applied batches whose flush has not succeeded yet, oldest first (the worker allows
        # one flush to overlap the next batch's apply).
        self._in_flight: list[InFlight] = []
        self.generation = 0  # bumped whenever the caches are dropped

    def forget_accounts(self) -> None:
        """Drop cached accounts: after a failure or a rebalance they may have changed elsewhere."""
        self._accounts = {}
        self._flushed = {}
        self._in_flight = []
        self.generation += 1

    async def process(self, records: Sequence[Any], fetched_at: float) -> None:
        """One batch, every step in a row (the worker overlaps flush with the next decide)."""
        decided = await self.decide(records, fetched_at)
        await self.apply(decided)
        await self.flush(decided)

    async def dead_letter(self, record: Any, reason: str, detail: str) -> None:
        """One record to the dead-letter topic, on its own (streams.isolate)."""
        await self._publisher.publish(
            [dead_letter(self._settings.topic_dlq, record, reason, detail)]
        )
        metrics.DLQ.labels(reason).inc()

    async def decide(self, records: Sequence[Any], fetched_at: float) -> Decided:
        """Decode, load and decide: reads only. May run while the previous batch flushes."""
        return await self._decide(records, fetched_at, self.generation)

    async def apply(self, decided: Decided) -> None:
        """The commit point: account-less decisions into the inbox, then the account writes.

        May run while the previous batch flushes: an account it writes again keeps that
        batch's records in its new outbox until they are flushed."""
        self._refuse_if_stale(decided)
        try:
            await self._apply(decided)
        except BaseException as exc:
            self.forget_accounts()
            decided.trace.end(exc)  # what was written names these spans: export them
            raise

    async def flush(self, decided: Decided) -> None:
        """Journal, transfers and refs; outcomes published and the inbox written."""
        try:
            await self._flush(decided)
        except BaseException as exc:
            self.forget_accounts()
            decided.trace.end(exc)
            raise
        decided.trace.end()
        if decided.in_flight in self._in_flight:
            self._in_flight.remove(decided.in_flight)
        observe(decided.plan, decided.dead, decided.fetched_at, decided.size)

    async def _decide(self, records: Sequence[Any], fetched_at: float, generation: int) -> Decided:
        now = datetime.now(UTC)
        trace = self._tracing.batch(len(records), fetched_at)
        # A large batch is decoded and decided in a thread: the CPU is the same (one GIL), but
        # the event loop gets it back every few milliseconds to serve the previous batch's
        # flush, which a backlog batch is decided beside (docs/performance.md). Both steps
        # are pure: they read only their arguments and immutable settings.
        offload = len(records) >= THREAD_MIN_RECORDS
        decoder = self._decoder
        with _stage("decode", trace):
            envelopes = await _compute(offload, decoder.envelopes, records)
            keys = await decoder.keys_for(envelopes)  # may fetch (JWKS): an outage raises
            items = await _compute(offload, decoder.items, records, envelopes, keys, now)
        work = [i for i in items if not isinstance(i, DeadItem)]
        dead = [i for i in items if isinstance(i, DeadItem)]
        trace.dead(dead)
        with _stage("load", trace):
            loaded = await self._load(work)
        with _stage("decide", trace):
            decider = await _compute(offload, self._decider, loaded, now, work, trace)
        return Decided(decider.plan, dead, fetched_at, len(records), generation, trace=trace)

    def _refuse_if_stale(self, decided: Decided) -> None:
        if decided.generation != self.generation:
            raise StaleDecisionError("caches were dropped since this batch was decided")

    def _decider(
        self,
        loaded: Loaded,
        now: datetime,
        work: Sequence[CommandItem | LegItem],
        trace: BatchTrace,
    ) -> BatchDecider:
        decider = trace.decider(
            loaded,
            now=now,
            source=self._settings.event_source,
            currencies=self._settings.currencies,
        )
        for item in work:
            decider.apply(item)
        decider.settle_locally(self._local)
        return decider

    async def _load(self, work: Sequence[Item]) -> Loaded:
        keys, transfers, refs, leg_transfers = _wanted(work, self._local)
        inbox_ids = [i.inbox_id for i in work if isinstance(i, CommandItem | LegItem)]
        store = self._store
        in_flight = merged(self._in_flight)  # as of now, even if a flush ends during the reads
        cached = {key: self._accounts[key] for key in keys if key in self._accounts}
        accounts, found_inbox, found_transfers, found_refs = await asyncio.gather(
            store.find_by_ids("accounts", [key for key in keys if key not in cached]),
            store.find_by_ids("inbox", inbox_ids),
            # with the transfers the batch's legs settle: no extra round trip (ADR 6)
            store.find_by_ids("transfers", [*transfers, *leg_transfers]),
            store.find_by_ids("external_refs", refs),
        )
        accounts |= cached
        inbox = _inbox(found_inbox)
        # The batch still flushing is final, though its inbox records may not be written yet.
        inbox |= {i: in_flight.records[i] for i in inbox_ids if i in in_flight.records}
        maybe = {
            key: outbox_records(doc)
            for key, doc in accounts.items()
            if self._flushed.get(key) != doc.get("version")
        }
        known = inbox.keys() | in_flight.records.keys()
        unknown = [r["_id"] for records in maybe.values() for r in records if r["_id"] not in known]
        if unknown:
            inbox |= _inbox(await store.find_by_ids("inbox", unknown))
            known = inbox.keys() | in_flight.records.keys()
        # An outbox record older than the inbox's memory was flushed long ago and its inbox
        # record since removed (streams.retention); it is not unflushed.
        horizon = datetime.now(UTC) - self._settings.idempotency_window
        unflushed = {
            key: [DecisionRecord.from_outbox(r) for r in pending]
            for key, records in maybe.items()
            if (pending := [r for r in records if r["_id"] not in known and r["at"] >= horizon])
        }
        transfer_ids = set(found_transfers) | in_flight.transfer_ids
        of_legs = {t: found_transfers[t] for t in leg_transfers if t in found_transfers}
        refs_taken = set(found_refs) | in_flight.ref_ids
        # A leg whose transfer document is missing or another command's (a transfer id reused
        # across partitions, ADR 4) is checked against the journal: one more find, only then.
        orphans = [
            i.leg
            for i in work
            if isinstance(i, LegItem)
            and i.inbox_id not in inbox
            and of_legs.get(i.leg.transfer_id, {}).get("command_id") != i.leg.command_id
        ]
        entries, currencies = await self._load_journal(orphans, accounts)
        return Loaded(
            accounts, inbox, transfer_ids, refs_taken, unflushed, of_legs, entries, currencies
        )

    async def _load_journal(
        self, legs: list[TransferLeg], accounts: dict[str, Doc]
    ) -> tuple[dict[str, Doc], dict[str, str]]:
        """The entries of these legs' commands, and their source accounts' currencies."""
        if not legs:
            return {}, {}
        store = self._store
        ids = [entry_id for leg in legs for entry_id in journal_ids(leg.command_id)]
        sources = {leg.from_account for leg in legs}
        known = {a: accounts[a] for a in sources if a in accounts}
        entries, found = await asyncio.gather(
            store.find_by_ids("entries", ids),
            store.find_by_ids("accounts", sources - known.keys()),
        )
        return entries, {a: doc["currency"] for a, doc in (known | found).items()}

    async def _apply(self, decided: Decided) -> None:
        store, plan = self._store, decided.plan
        # (a) decisions that touch no existing account become final before any account
        # changes, so a redelivery cannot decide them differently against newer state.
        taken = await store.put_inbox([r.inbox_document() for r in plan.first_inbox])
        if taken:  # another worker decided these first (a rebalance race): theirs is final
            plan.adopt(_inbox(await store.find_by_ids("inbox", taken)))
        # A flush that failed meanwhile dropped the caches and the batches in flight, whose
        # records must be carried into the outboxes written here: decide again instead.
        self._refuse_if_stale(decided)
        first, second = account_writes(plan, self._in_flight)
        with _stage("accounts", decided.trace):
            await store.write_accounts(first)  # (b) one atomic write per account
            # (b2) destinations credited locally, once the debits they depend on are durable
            await store.write_accounts(second)
        # Durable, but if the caches are gone the retry finds these records in the outboxes.
        self._refuse_if_stale(decided)
        # Durable now (ADR 4): the next batch may be decided on this state while this one
        # flushes; these decisions count as final for it, and these outboxes as handled.
        decided.inbox = inbox_records(plan)
        decided.in_flight = InFlight.of(plan, decided.inbox)
        self._in_flight.append(decided.in_flight)
        for write in [*first, *second]:
            key = write.document["_id"]
            version = 1 if write.loaded_version is None else write.loaded_version + 1
            self._flushed[key] = version
            self._cache_account(key, {**write.document, "version": version, "outbox": write.outbox})

    async def _flush(self, decided: Decided) -> None:
        store, plan, dead, trace = self._store, decided.plan, decided.dead, decided.trace
        with _stage("effects", trace):
            await store.write_effects(effects(plan.flush))  # (c) journal, transfers, refs
        # (d) publish, and make the decisions final in the inbox, at once: either alone is
        # safe after a crash, since a redelivered command finds its inbox record or its
        # account's outbox, and then republishes the same outcome.
        with _stage("publish", trace):
            await asyncio.gather(
                self._publisher.publish(self._outbound.messages(plan, dead)), self._finish(decided)
            )

    async def _finish(self, decided: Decided) -> None:
        store, plan = self._store, decided.plan
        flushed = {r.id for r in plan.flush}
        first = {r.id for r in plan.first_inbox}  # written by apply already
        await store.put_inbox([r.inbox_document() for r in decided.inbox if r.id not in first])
        # A saga settled in an earlier batch: its outcome goes onto the command's inbox record.
        await store.complete_commands(
            [
                r.outcome
                for r in plan.flush
                if r.completes
                and r.outcome is not None
                and command_inbox_id(r.command_id) not in flushed
            ]
        )

    def _cache_account(self, key: str, document: Doc) -> None:
        self._accounts.pop(key, None)
        self._accounts[key] = document
        if len(self._accounts) > _CACHED_ACCOUNTS:
            del self._accounts[next(iter(self._accounts))]


async def _compute(offload: bool, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)`, in a thread when `offload` (pure work only)."""
    return await asyncio.to_thread(work, *args) if offload else work(*args)


def _inbox(found: dict[str, Doc]) -> dict[str, DecisionRecord]:
    return {key: DecisionRecord.from_inbox(doc) for key, doc in found.items()}


def _nowhere(account: str) -> bool:
    return False


def _wanted(
    work: Sequence[Item], local: Callable[[str], bool]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Ids to load: accounts, transfers (commands), external refs, transfers (legs)."""
    keys: list[str] = []
    transfers: list[str] = []
    refs: list[str] = []
    leg_transfers: list[str] = []
    for item in work:
        if isinstance(item, LegItem):
            keys.append(item.leg.account_key)
            leg_transfers.append(item.leg.transfer_id)
        elif isinstance(item, CommandItem) and isinstance(item.admission, tuple):
            command = item.admission[0]
            keys.append(command.account_key)
            if isinstance(command, Transfer):
                transfers.append(command.transfer_id)
                if local(command.to_account):  # may be credited in this batch
                    keys.append(command.to_account)
            if isinstance(command, Deposit | Withdrawal):
                refs.append(ref_id(command.account_id, command.external_ref))
    return keys, transfers, refs, leg_transfers


@contextmanager
def _stage(name: str, trace: BatchTrace) -> Iterator[None]:
    started = time.perf_counter()
    try:
        with trace.stage(name):
            yield
    finally:
        metrics.BATCH_STAGE_SECONDS.labels(name).observe(time.perf_counter() - started)
