"""Schema strictness of commands (contract §3): money, identifiers, text, unknown fields."""

from typing import Any

import pytest
from pydantic import ValidationError

from models.commands import (
    COMMAND_MODELS,
    CloseAccount,
    Deposit,
    FreezeAccount,
    OpenAccount,
    SetLimits,
    Transfer,
    Withdrawal,
)

pytestmark = pytest.mark.unit


def deposit_data(**changes: Any) -> dict[str, Any]:
    return {
        "account_id": "acc-1",
        "amount": 100,
        "currency": "EUR",
        "external_ref": "r-1",
    } | changes


def transfer_data(**changes: Any) -> dict[str, Any]:
    base = {"transfer_id": "t-1", "from_account": "a", "to_account": "b", "amount": 5}
    return base | {"currency": "EUR"} | changes


def error_locs(error: ValidationError) -> list[tuple[str | int, ...]]:
    return [e["loc"] for e in error.errors()]


def test_a_valid_deposit_is_accepted() -> None:
    assert Deposit.model_validate(deposit_data()).amount == 100


@pytest.mark.parametrize("amount", ["100", 1.0, 1.5, True, False, None, 0, -1, [1]])
def test_an_amount_that_is_not_a_positive_integer_is_invalid(amount: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Deposit.model_validate(deposit_data(amount=amount))
    assert error_locs(caught.value) == [("amount",)]


@pytest.mark.parametrize("raw", [b'"100"', b"1.0", b"1e2", b"true", b"0", b"-5"])
def test_an_amount_in_json_that_is_not_a_positive_integer_is_invalid(raw: bytes) -> None:
    data = b'{"account_id":"a","amount":%s,"currency":"EUR","external_ref":"r"}' % raw
    with pytest.raises(ValidationError):
        Withdrawal.model_validate_json(data)


def test_the_default_maximum_amount_is_ten_to_the_fifteen() -> None:
    assert Deposit.model_validate(deposit_data(amount=10**15)).amount == 10**15
    with pytest.raises(ValidationError):
        Deposit.model_validate(deposit_data(amount=10**15 + 1))


def test_the_maximum_amount_comes_from_the_validation_context() -> None:
    context = {"max_amount": 500}
    assert Deposit.model_validate(deposit_data(amount=500), context=context).amount == 500
    with pytest.raises(ValidationError) as caught:
        Deposit.model_validate(deposit_data(amount=501), context=context)
    assert "at most 500" in caught.value.errors()[0]["msg"]


def test_limits_are_bounded_by_the_maximum_amount_too() -> None:
    data = {"account_id": "a", "overdraft_limit": 11}
    with pytest.raises(ValidationError):
        SetLimits.model_validate(data, context={"max_amount": 10})


def test_unknown_fields_are_invalid() -> None:
    with pytest.raises(ValidationError) as caught:
        Deposit.model_validate(deposit_data(note="hi"))
    assert error_locs(caught.value) == [("note",)]


def test_missing_fields_are_invalid() -> None:
    with pytest.raises(ValidationError):
        Deposit.model_validate({"account_id": "acc-1", "amount": 1, "currency": "EUR"})


@pytest.mark.parametrize(
    "account_id", ["", "-starts-with-dash", "has space", "a" * 65, "ünïcode", "a/b", 42]
)
def test_a_malformed_account_id_is_invalid(account_id: object) -> None:
    with pytest.raises(ValidationError):
        Deposit.model_validate(deposit_data(account_id=account_id))


@pytest.mark.parametrize("account_id", ["a", "A.b_c:d-9", "9" * 64])
def test_account_ids_use_the_spec_alphabet_up_to_64_characters(account_id: str) -> None:
    assert Deposit.model_validate(deposit_data(account_id=account_id)).account_id == account_id


def test_an_external_ref_may_be_128_characters_but_not_129() -> None:
    assert Deposit.model_validate(deposit_data(external_ref="r" * 128))
    with pytest.raises(ValidationError):
        Deposit.model_validate(deposit_data(external_ref="r" * 129))


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", "", 978])
def test_a_currency_that_is_not_three_capital_letters_is_invalid(currency: object) -> None:
    with pytest.raises(ValidationError):
        Deposit.model_validate(deposit_data(currency=currency))


def test_an_unlisted_but_well_formed_currency_is_left_to_the_state_rules() -> None:
    assert Deposit.model_validate(deposit_data(currency="XYZ")).currency == "XYZ"


def test_a_memo_of_140_characters_is_valid_and_141_is_not() -> None:
    assert Transfer.model_validate(transfer_data(memo="é" * 140)).memo == "é" * 140
    with pytest.raises(ValidationError):
        Transfer.model_validate(transfer_data(memo="m" * 141))


@pytest.mark.parametrize("char", ["\x00", "\n", "\t", "\x1b", "\x7f", "\x85", "\x9f"])
def test_a_memo_with_a_control_character_is_invalid(char: str) -> None:
    with pytest.raises(ValidationError):
        Transfer.model_validate(transfer_data(memo=f"rent{char}march"))


def test_a_transfer_memo_is_optional() -> None:
    assert Transfer.model_validate(transfer_data()).memo is None


@pytest.mark.parametrize("text", ["", "x" * 141, "bad\nline"])
def test_a_freeze_reason_must_be_short_plain_text(text: str) -> None:
    with pytest.raises(ValidationError):
        FreezeAccount.model_validate({"account_id": "a", "reason": text})


def test_opening_defaults_to_no_overdraft_and_no_daily_limit() -> None:
    opened = OpenAccount.model_validate({"account_id": "a", "owner_id": "o", "currency": "EUR"})
    assert (opened.overdraft_limit, opened.daily_outflow_limit) == (0, None)


def test_a_negative_limit_is_invalid() -> None:
    data = {"account_id": "a", "owner_id": "o", "currency": "EUR", "overdraft_limit": -1}
    with pytest.raises(ValidationError):
        OpenAccount.model_validate(data)


def test_set_limits_needs_at_least_one_limit() -> None:
    with pytest.raises(ValidationError):
        SetLimits.model_validate({"account_id": "a"})


def test_set_limits_distinguishes_an_absent_daily_limit_from_a_null_one() -> None:
    removing = SetLimits.model_validate_json(b'{"account_id":"a","daily_outflow_limit":null}')
    keeping = SetLimits.model_validate({"account_id": "a", "overdraft_limit": 5})
    assert removing.sets_daily_outflow_limit
    assert removing.daily_outflow_limit is None
    assert not keeping.sets_daily_outflow_limit


def test_set_limits_refuses_a_null_overdraft_limit() -> None:
    with pytest.raises(ValidationError) as caught:
        SetLimits.model_validate({"account_id": "a", "overdraft_limit": None})
    assert error_locs(caught.value) == [("overdraft_limit",)]


def test_commands_are_frozen() -> None:
    command = CloseAccount(account_id="a")
    with pytest.raises(ValidationError):
        command.account_id = "b"  # type: ignore[misc]  # proving the model refuses assignment


def test_every_spec_command_type_has_a_model() -> None:
    assert set(COMMAND_MODELS) == {
        "ledger.account.open.v1",
        "ledger.deposit.v1",
        "ledger.withdrawal.v1",
        "ledger.transfer.v1",
        "ledger.account.freeze.v1",
        "ledger.account.unfreeze.v1",
        "ledger.account.close.v1",
        "ledger.account.limits.v1",
    }
    assert all(key == model.TYPE for key, model in COMMAND_MODELS.items())


def test_the_account_key_of_a_transfer_is_its_source() -> None:
    assert Transfer.model_validate(transfer_data()).account_key == "a"
    assert Deposit.model_validate(deposit_data()).account_key == "acc-1"
