"""What a decided batch writes, and in which order (streams/writes.py): no database needed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.batch import Plan
from streams.decisions import DecisionRecord
from streams.writes import (
    InFlight,
    account_writes,
    carry,
    effects,
    inbox_records,
    merged,
)
from tests.unit.factories import NOW, account

pytestmark = pytest.mark.unit


def record(_id: str, command_id: str, **fields: Any) -> DecisionRecord:
    fields = {"outcome": None, "leg": None, "at": NOW, "entries": ()} | fields
    return DecisionRecord(_id, command_id, **fields)


def documents(*records: DecisionRecord) -> list[dict[str, Any]]:
    return [r.outbox_document() for r in records]


def test_without_local_credits_every_account_is_written_once_in_the_first_round() -> None:
    plan = Plan()
    plan.touched = {"a": account(id="a"), "b": account(id="b")}
    plan.versions = {"a": 3, "b": None}
    plan.outboxes = {"a": [record("c:1", "1")], "b": [record("c:2", "2")]}
    first, second = account_writes(plan)
    assert [(w.document["_id"], w.loaded_version) for w in first] == [("a", 3), ("b", None)]
    assert [w.outbox for w in first] == [
        documents(record("c:1", "1")),
        documents(record("c:2", "2")),
    ]
    assert second == []
    assert "version" not in first[0].document  # the version is the write's own business


def test_a_destination_credited_locally_is_written_after_the_debits_it_depends_on() -> None:
    plan = Plan()
    plan.touched = {"a": account(id="a", balance=900), "b": account(id="b", balance=100)}
    plan.versions = {"a": 3, "b": 7}
    plan.outboxes = {"a": [record("c:t", "t")], "b": [record("l:t:credit", "t")]}
    plan.second_round, plan.sources = {"b"}, {"a"}
    first, second = account_writes(plan)
    assert [w.document["_id"] for w in first] == ["a"]
    assert [(w.document["_id"], w.loaded_version, w.document["balance"]) for w in second] == [
        ("b", 7, 100)
    ]


def test_an_account_both_source_and_destination_of_local_credits_is_written_twice() -> None:
    before, after = account(id="b", balance=50), account(id="b", balance=80)
    plan = Plan()
    plan.touched = {"b": after}
    plan.versions = {"b": 7}
    debit, credit = record("c:u", "u"), record("l:t:credit", "t")
    plan.outboxes = {"b": [debit, credit]}
    plan.second_round, plan.sources = {"b"}, {"b"}
    plan.first_round = {"b": (before, [debit])}
    first, second = account_writes(plan)
    assert [(w.document["balance"], w.loaded_version, w.outbox) for w in first] == [
        (50, 7, documents(debit))
    ]
    assert [(w.document["balance"], w.loaded_version, w.outbox) for w in second] == [
        (80, 8, documents(debit, credit))  # version-checked against the first round's write
    ]


def test_an_account_written_again_keeps_the_records_of_the_batch_still_flushing() -> None:
    flushing = InFlight(outboxes={"a": [record("c:1", "1")], "b": [record("c:9", "9")]})
    own = [record("c:2", "2")]
    assert [r.id for r in carry([flushing], "a", own)] == ["c:1", "c:2"]
    assert carry([flushing], "c", own) is own  # nothing of its own in flight
    assert [r.id for r in carry([flushing], "a", [record("c:1", "1")])] == ["c:1"]  # never twice
    assert carry([], "a", own) is own


def test_both_rounds_of_account_writes_carry_the_records_of_batches_still_flushing() -> None:
    plan = Plan()
    plan.touched = {"a": account(id="a"), "b": account(id="b")}
    plan.versions = {"a": 3, "b": 7}
    plan.outboxes = {"a": [record("c:t", "t")], "b": [record("l:t:credit", "t")]}
    plan.second_round, plan.sources = {"b"}, {"a"}
    flushing = InFlight(outboxes={"a": [record("c:1", "1")], "b": [record("c:2", "2")]})
    first, second = account_writes(plan, [flushing])
    assert [r["_id"] for r in first[0].outbox] == ["c:1", "c:t"]
    assert [r["_id"] for r in second[0].outbox] == ["c:2", "l:t:credit"]


def test_a_batch_in_flight_holds_its_decisions_claims_and_its_own_outboxes() -> None:
    plan = Plan()
    entry = {"_id": "d:debit", "account_id": "a", "command_id": "d", "external_ref": "r"}
    deposit = record("c:d", "d", entries=(entry,))
    debit = record("c:t", "t", transfer={"_id": "t-1", "command_id": "t", "state": "debited"})
    plan.flush, plan.outboxes = [deposit, debit], {"a": [deposit, debit]}
    plan.touched = {"a": account(id="a"), "b": account(id="b")}
    batch = InFlight.of(plan, inbox_records(plan))
    assert (list(batch.records), batch.ref_ids, batch.transfer_ids) == (
        ["c:d", "c:t"],
        {"a/r"},
        {"t-1"},
    )
    assert batch.outboxes == {"a": [deposit, debit], "b": []}  # every account it writes


def test_batches_in_flight_merge_their_decisions_and_claims() -> None:
    one = InFlight({"c:1": record("c:1", "1")}, {"t-1"}, {"a/r"})
    two = InFlight({"c:2": record("c:2", "2")}, {"t-2"}, set())
    together = merged([one, two])
    assert (set(together.records), together.transfer_ids, together.ref_ids) == (
        {"c:1", "c:2"},
        {"t-1", "t-2"},
        {"a/r"},
    )


def test_a_transfer_settled_in_the_same_flush_gets_its_outcome_on_the_command_record() -> None:
    completed = {"type": "ledger.transfer.completed.v1"}
    plan = Plan()
    plan.flush = [
        record("c:t", "t", leg={"leg": "credit"}),
        record("l:t:credit", "t", outcome=completed, completes=True),
    ]
    inbox = [r.inbox_document() for r in inbox_records(plan)]
    assert inbox[0] == {**record("c:t", "t").inbox_document(), "outcome": completed, "leg": None}
    assert inbox[1]["outcome"] == completed
    assert set(inbox[1]) == {"_id", "command_id", "outcome", "leg", "at"}
    assert plan.flush[0].leg == {"leg": "credit"}  # a new record, the decision unchanged


def _transfer(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "_id": "t-1",
        "command_id": "t",
        "state": state,
        "reason": None,
        "updated_at": 1,
        **extra,
    }


def test_a_debit_and_its_settlement_in_one_flush_insert_the_transfer_settled() -> None:
    found = effects(
        [
            record("c:t", "t", transfer=_transfer("debited", from_account="a")),
            record("l:t:credit", "t", transfer=_transfer("completed")),
        ]
    )
    assert found.new_transfers == [_transfer("completed", from_account="a")]
    assert [u["set"]["state"] for u in found.settle_if_present] == ["completed"]
    assert found.transfer_updates == []


def test_a_settlement_of_an_earlier_debit_is_an_update_guarded_by_its_command() -> None:
    found = effects([record("l:t:refund", "t", transfer=_transfer("failed", reason="x"))])
    assert found.new_transfers == []
    assert found.transfer_updates == [
        {
            "_id": "t-1",
            "command_id": "t",
            "set": {"state": "failed", "reason": "x", "updated_at": 1},
        }
    ]


entries = st.lists(
    st.fixed_dictionaries(
        {
            "_id": st.text(min_size=1, max_size=6),
            "account_id": st.sampled_from(["a", "b", "c"]),
            "command_id": st.text(min_size=1, max_size=4),
            "external_ref": st.none() | st.sampled_from(["r1", "r2"]),
        }
    ),
    max_size=4,
)


@given(st.lists(entries, max_size=5))
def test_every_journal_entry_is_written_once_and_every_external_ref_it_claims(
    per_record: list[list[dict[str, Any]]],
) -> None:
    records = [record(f"c:{i}", str(i), entries=tuple(es)) for i, es in enumerate(per_record)]
    found = effects(records)
    assert found.entries == [e for es in per_record for e in es]
    claimed = [e for es in per_record for e in es if e["external_ref"]]
    assert found.refs == [
        {"_id": f"{e['account_id']}/{e['external_ref']}", "command_id": e["command_id"]}
        for e in claimed
    ]
