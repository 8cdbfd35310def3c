"""Admission (contract §5 order): type known, then authtoken, then the schema of `data`."""

import json
from datetime import timedelta
from typing import Any

import jwt
import pytest

from handlers.admit import admit
from handlers.auth import Principal, TokenKeys
from handlers.decision import Rejection
from models.commands import Deposit, FreezeAccount, Transfer

from .factories import NOW

pytestmark = pytest.mark.unit

SECRET = "admit-secret-long-enough-for-every-hmac-algorithm-0123456789abcdef"
KEYS = TokenKeys(secret=SECRET)
DEPOSIT = "ledger.deposit.v1"
GOOD_DATA = {"account_id": "acc-1", "amount": 100, "currency": "EUR", "external_ref": "r-1"}


def token(roles: list[str], sub: str = "psp") -> str:
    exp = int((NOW + timedelta(minutes=5)).timestamp())
    return jwt.encode({"sub": sub, "roles": roles, "exp": exp}, SECRET, algorithm="HS256")


def run(type_: str, data: Any, auth: str | None, max_amount: int = 10**15) -> Any:
    return admit(type_, data, auth, KEYS, NOW, max_amount)


def rejection(result: object) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


def test_a_valid_command_is_admitted_with_its_principal() -> None:
    command, principal = run(DEPOSIT, json.dumps(GOOD_DATA).encode(), token(["payments"]))
    assert command == Deposit.model_validate(GOOD_DATA)
    assert principal == Principal("psp", frozenset({"payments"}))


def test_already_parsed_data_is_admitted_like_raw_json() -> None:
    command, _ = run(DEPOSIT, GOOD_DATA, token(["payments"]))
    assert isinstance(command, Deposit)


def test_an_unknown_type_is_unsupported_type() -> None:
    assert rejection(run("ledger.teleport.v1", GOOD_DATA, token(["ops"]))).reason == (
        "unsupported_type"
    )


def test_an_unknown_type_beats_a_bad_token() -> None:
    assert rejection(run("ledger.teleport.v1", b"{", "garbage")).reason == "unsupported_type"


def test_a_bad_token_beats_bad_data() -> None:
    assert rejection(run(DEPOSIT, b"not json", None)).reason == "unauthenticated"


def test_bad_data_beats_a_missing_permission() -> None:
    # A payments token may not freeze; the schema is still judged first (contract §5).
    result = run(FreezeAccount.TYPE, {"account_id": "a"}, token(["payments"]))
    assert rejection(result).reason == "invalid"


def test_invalid_data_lists_each_error_with_its_location() -> None:
    data = GOOD_DATA | {"amount": "100", "extra": True}
    result = rejection(run(DEPOSIT, json.dumps(data).encode(), token(["payments"])))
    assert result.reason == "invalid"
    assert sorted(tuple(e.loc) for e in result.errors) == [("amount",), ("extra",)]
    assert all(e.msg for e in result.errors)


@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"42", b"null", b"{", b"", [1], "x", None])
def test_data_that_is_not_a_json_object_is_invalid(data: object) -> None:
    assert rejection(run(DEPOSIT, data, token(["payments"]))).reason == "invalid"


def test_the_maximum_amount_is_passed_to_the_schema() -> None:
    raw = json.dumps(GOOD_DATA | {"amount": 101}).encode()
    result = rejection(run(DEPOSIT, raw, token(["payments"]), max_amount=100))
    assert result.reason == "invalid"
    assert [e.loc for e in result.errors] == [["amount"]]


def test_a_float_amount_in_raw_json_is_invalid() -> None:
    raw = json.dumps(GOOD_DATA | {"amount": 1.0}).encode()
    assert rejection(run(DEPOSIT, raw, token(["payments"]))).reason == "invalid"


def test_the_rejection_never_contains_the_token() -> None:
    bad = token(["ops"])[:-4] + "AAAA"
    result = rejection(run(Transfer.TYPE, {}, bad))
    assert bad not in result.detail
    assert result.reason == "unauthenticated"
