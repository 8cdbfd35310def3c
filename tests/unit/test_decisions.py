"""A decision record and its stored forms (streams/decisions.py): the documents stay as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest

from streams.batch import Plan
from streams.decisions import DecisionRecord

pytestmark = pytest.mark.unit

AT = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
Doc = dict[str, Any]


def event(command_id: str, event_type: str, **data: Any) -> Doc:
    return {
        "id": f"uuid-of-{command_id}",
        "source": "tally",
        "type": event_type,
        "time": "2026-05-01T12:00:00.123Z",
        "subject": "a",
        "correlationid": command_id,
        "causationid": command_id,
        "traceparent": None,
        "data": data,
    }


def entry(command_id: str, kind: str, amount: int, **extra: Any) -> Doc:
    return {
        "_id": f"{command_id}:{kind}",
        "account_id": "a",
        "command_id": command_id,
        "kind": kind,
        "amount": amount,
        "currency": "EUR",
        "at": AT,
        "external_ref": None,
        **extra,
    }


def transfer(state: str) -> Doc:
    return {
        "_id": "t-1",
        "command_id": "cmd-3",
        "from_account": "a",
        "to_account": "b",
        "amount": 10,
        "currency": "EUR",
        "state": state,
        "reason": None,
        "created_at": AT,
        "updated_at": AT,
    }


LEG = {"leg": "credit", "command_id": "cmd-3", "transfer_id": "t-1", "amount": 10}

# The outbox documents as Tally writes them, field order included (the outbox is BSON bytes).
DEPOSIT = {
    "_id": "c:cmd-2",
    "command_id": "cmd-2",
    "outcome": event("cmd-2", "ledger.deposited.v1", amount=100),
    "leg": None,
    "at": AT,
    "entries": [entry("cmd-2", "deposit", 100, external_ref="r2")],
}
REJECTION = {  # no entries field at all
    "_id": "c:cmd-5",
    "command_id": "cmd-5",
    "outcome": event("cmd-5", "ledger.command.rejected.v1", reason="insufficient_funds"),
    "leg": None,
    "at": AT,
}
DEBIT = {  # a transfer accepted: no outcome yet, the leg to send, the transfer document
    "_id": "c:cmd-3",
    "command_id": "cmd-3",
    "outcome": None,
    "leg": LEG,
    "at": AT,
    "entries": [entry("cmd-3", "transfer_out", -10)],
    "transfer": transfer("debited"),
}
CREDIT = {  # the leg that ends the saga: its outcome is the transfer's
    "_id": "l:cmd-3:credit",
    "command_id": "cmd-3",
    "outcome": event("cmd-3", "ledger.transfer.completed.v1"),
    "leg": None,
    "at": AT,
    "entries": [entry("cmd-3", "transfer_in", 10)],
    "transfer": transfer("completed"),
    "completes": True,
}
OPENED = {**DEPOSIT, "_id": "c:cmd-1", "command_id": "cmd-1", "entries": []}


@pytest.mark.parametrize(
    "doc", [DEPOSIT, REJECTION, DEBIT, CREDIT, OPENED], ids=lambda d: str(d["_id"])
)
def test_an_outbox_document_comes_back_from_its_record_byte_for_byte(doc: Doc) -> None:
    again = DecisionRecord.from_outbox(doc).outbox_document()
    assert again == doc
    assert bson.encode(again) == bson.encode(doc)  # field order too


@pytest.mark.parametrize("doc", [DEPOSIT, REJECTION, DEBIT, CREDIT], ids=lambda d: str(d["_id"]))
def test_an_inbox_document_comes_back_from_its_record_byte_for_byte(doc: Doc) -> None:
    inbox = {k: doc[k] for k in ("_id", "command_id", "outcome", "leg", "at")}
    assert bson.encode(DecisionRecord.from_outbox(doc).inbox_document()) == bson.encode(inbox)
    assert bson.encode(DecisionRecord.from_inbox(inbox).inbox_document()) == bson.encode(inbox)


def test_a_record_holds_each_field_of_its_outbox_document() -> None:
    credit = DecisionRecord.from_outbox(CREDIT)
    assert (credit.id, credit.command_id, credit.at, credit.completes) == (
        "l:cmd-3:credit",
        "cmd-3",
        AT,
        True,
    )
    assert credit.entries == tuple(CREDIT["entries"]) and credit.transfer == transfer("completed")
    rejection = DecisionRecord.from_outbox(REJECTION)
    assert (rejection.entries, rejection.transfer, rejection.completes) == (None, None, False)
    assert DecisionRecord.from_outbox(OPENED).entries == ()


def test_an_inbox_record_a_sagas_end_created_reads_as_its_transfer_commands_outcome() -> None:
    outcome = event("cmd-3", "ledger.transfer.completed.v1")
    record = DecisionRecord.from_inbox({"_id": "c:cmd-3", "outcome": outcome})
    assert (record.id, record.command_id, record.outcome, record.leg) == (
        "c:cmd-3",
        "cmd-3",
        outcome,
        None,
    )


def test_another_workers_decision_replaces_the_record_in_every_list_of_the_plan() -> None:
    mine = DecisionRecord.from_outbox(REJECTION)
    other = DecisionRecord.from_outbox(DEPOSIT)
    plan = Plan(first_inbox=[mine], flush=[other, mine], republish=[mine])
    theirs = {**REJECTION["outcome"], "source": "the-other-worker"}
    plan.adopt({mine.id: DecisionRecord.from_inbox({**REJECTION, "outcome": theirs})})
    assert [r.outcome for r in plan.first_inbox] == [theirs]
    assert [r.outcome for r in plan.flush] == [DEPOSIT["outcome"], theirs]
    assert [r.outcome for r in plan.republish] == [theirs]  # a duplicate later in the batch
    assert mine.outcome == REJECTION["outcome"]  # records are never patched
