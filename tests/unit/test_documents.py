"""Documents, outcome events and the envelope: shapes other programs rely on (contract §5, §9)."""

import typing

import pytest
from pydantic import ValidationError

from models.documents import Account, TransferLeg
from models.events import EVENT_MODELS, CommandRejected, ErrorItem, RejectionReason

from .factories import NOW, account

pytestmark = pytest.mark.unit


def test_there_are_exactly_the_seventeen_spec_rejection_reasons() -> None:
    assert len(typing.get_args(RejectionReason)) == 17


def test_every_spec_outcome_type_has_a_model() -> None:
    assert set(EVENT_MODELS) == {
        "ledger.account.opened.v1",
        "ledger.deposited.v1",
        "ledger.withdrawn.v1",
        "ledger.transfer.completed.v1",
        "ledger.transfer.failed.v1",
        "ledger.account.frozen.v1",
        "ledger.account.unfrozen.v1",
        "ledger.account.closed.v1",
        "ledger.account.limits_changed.v1",
        "ledger.command.rejected.v1",
        "ledger.risk.velocity_exceeded.v1",
    }


def test_a_rejection_event_serialises_its_errors_as_loc_and_msg() -> None:
    event = CommandRejected(
        command_id="c",
        command_type="ledger.deposit.v1",
        reason="invalid",
        detail="data is not valid",
        errors=[ErrorItem(loc=["amount"], msg="Input should be a valid integer")],
    )
    assert event.model_dump(mode="json")["errors"] == [
        {"loc": ["amount"], "msg": "Input should be a valid integer"}
    ]


def test_a_rejection_reason_outside_the_spec_is_refused() -> None:
    with pytest.raises(ValidationError):
        CommandRejected(command_id="c", command_type="t", reason="nope", detail="")  # type: ignore[arg-type]  # proving the Literal is enforced at runtime


def test_an_account_dumps_its_id_as_mongo_id() -> None:
    dumped = account().model_dump()
    assert dumped["_id"] == "acc-1"
    assert "id" not in dumped


def test_an_account_loads_from_its_stored_document() -> None:
    assert Account.model_validate(account().model_dump()) == account()


def test_a_stored_document_with_unknown_fields_is_refused() -> None:
    with pytest.raises(ValidationError):
        Account.model_validate(account().model_dump() | {"outbox": []})


def test_an_account_status_outside_the_spec_is_refused() -> None:
    with pytest.raises(ValidationError):
        account(status="suspended")


def test_a_transfer_leg_round_trips_through_json() -> None:
    leg = TransferLeg(
        leg="refund",
        command_id="c",
        transfer_id="t",
        from_account="a",
        to_account="b",
        amount=5,
        currency="EUR",
        reason="account_closed",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    assert TransferLeg.model_validate_json(leg.model_dump_json()) == leg
    assert (leg.message_id, leg.account_key) == ("c:refund", "a")


def test_a_refund_leg_needs_a_reason_and_a_credit_leg_has_none() -> None:
    base: dict[str, object] = {"command_id": "c", "transfer_id": "t", "amount": 5}
    base |= {"from_account": "a", "to_account": "b", "currency": "EUR"}
    with pytest.raises(ValidationError):
        TransferLeg.model_validate(base | {"leg": "refund"})
    with pytest.raises(ValidationError):
        TransferLeg.model_validate(base | {"leg": "credit", "reason": "account_closed"})


def test_documents_keep_timestamps_as_datetimes() -> None:
    assert account().model_dump()["created_at"] == NOW
