"""The record of what a batch decided for one command or leg, and its two stored forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.outcomes import StoredEvent

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision (ADR 4): whole in its account's outbox, its first five fields in the inbox.

    Both documents keep the fields, in the order, that every version of Tally has written:
    workers of another version recover each other's outboxes, other programs read the inbox.
    Frozen: a change is a new record (`dataclasses.replace`), never a patch of one that other
    lists of the batch hold too."""

    id: str  # the inbox id (models/ids.py), `_id` in both forms
    command_id: str
    outcome: StoredEvent | None  # as published; None while the transfer's saga runs
    leg: Doc | None  # the transfer leg to send, as published
    at: datetime | None  # None only when read from an inbox record a saga's end created
    # As stored (a model per entry would cost a dump per write and a validation per recovered
    # record). None: a rejection, whose documents have no `entries` field, or read from the inbox.
    entries: tuple[Doc, ...] | None = None
    transfer: Doc | None = None  # the transfer document as this decision leaves it
    completes: bool = False  # a leg that ends its saga: `outcome` is its transfer's

    @classmethod
    def from_outbox(cls, doc: Doc) -> DecisionRecord:
        """A record of an account's outbox (streams.store.outbox_records)."""
        entries = doc.get("entries")
        return cls(
            id=doc["_id"],
            command_id=doc["command_id"],
            outcome=doc["outcome"],
            leg=doc["leg"],
            at=doc["at"],
            entries=None if entries is None else tuple(entries),
            transfer=doc.get("transfer"),
            completes=doc.get("completes", False),
        )

    def outbox_document(self) -> Doc:
        """The record as an account's outbox stores it: optional fields only when set."""
        doc: Doc = self.inbox_document()
        if self.entries is not None:
            doc["entries"] = list(self.entries)
        if self.transfer is not None:
            doc["transfer"] = self.transfer
        if self.completes:
            doc["completes"] = True
        return doc

    @classmethod
    def from_inbox(cls, doc: Doc) -> DecisionRecord:
        """An inbox record: what a duplicate republishes; it holds no effects.

        A transfer command's record may hold only `_id` and `outcome`: its saga's end was
        recorded (Store.complete_commands) before the command's own record was written."""
        outcome = doc.get("outcome")
        command_id = doc.get("command_id") or (outcome or {}).get("correlationid", "")
        return cls(doc["_id"], command_id, outcome, doc.get("leg"), doc.get("at"))

    def inbox_document(self) -> Doc:
        """The record as the inbox stores it."""
        return {
            "_id": self.id,
            "command_id": self.command_id,
            "outcome": self.outcome,
            "leg": self.leg,
            "at": self.at,
        }
