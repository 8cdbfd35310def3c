"""Only Tally moves money (SPEC §8.8): a leg must match a debit still in flight, and be signed."""

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.legs import untrusted
from models.documents import TransferLeg, TransferRecord
from streams.legs import MAC_HEADER, derive_leg_key, sign_leg, verify_leg

from .factories import NOW

pytestmark = pytest.mark.unit

KEY = derive_leg_key("a-jwt-secret-that-is-long-enough-for-hs256")


def transfer(**changes: Any) -> TransferRecord:
    fields: dict[str, Any] = {
        "id": "tr-1",
        "from_account": "acc-1",
        "to_account": "acc-2",
        "amount": 400,
        "currency": "EUR",
        "state": "debited",
        "command_id": "cmd-t",
        "memo": "rent",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return TransferRecord(**(fields | changes))


def leg(**changes: Any) -> TransferLeg:
    fields: dict[str, Any] = {
        "leg": "credit",
        "command_id": "cmd-t",
        "transfer_id": "tr-1",
        "from_account": "acc-1",
        "to_account": "acc-2",
        "amount": 400,
        "currency": "EUR",
        "memo": "rent",
    }
    return TransferLeg(**(fields | changes))


def test_a_credit_leg_of_a_debited_transfer_is_trusted() -> None:
    assert untrusted(leg(), transfer()) is None


def test_a_refund_leg_of_a_debited_transfer_is_trusted() -> None:
    assert untrusted(leg(leg="refund", reason="account_closed"), transfer()) is None


def test_a_leg_whose_memo_or_trace_differs_is_still_trusted() -> None:
    # Neither moves money; the MAC is what keeps them as the debit wrote them.
    assert (
        untrusted(
            leg(memo="other", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"), transfer()
        )
        is None
    )


def test_a_leg_of_a_transfer_that_does_not_exist_is_untrusted() -> None:
    assert untrusted(leg(), None) == "no transfer 'tr-1' was debited"


def test_a_leg_checked_against_another_transfer_is_untrusted() -> None:
    assert untrusted(leg(), transfer(id="tr-2")) is not None


@pytest.mark.parametrize("state", ["completed", "failed"])
def test_a_leg_of_a_transfer_that_ended_is_untrusted(state: str) -> None:
    detail = untrusted(leg(), transfer(state=state))
    assert detail == f"transfer 'tr-1' is no longer in flight: {state}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command_id", "cmd-other"),
        ("from_account", "acc-9"),
        ("to_account", "acc-mallory"),
        ("amount", 2_000_000),
        ("currency", "USD"),
    ],
)
def test_a_leg_that_differs_from_its_debit_is_untrusted(field: str, value: Any) -> None:
    detail = untrusted(leg(**{field: value}), transfer())
    assert detail == f"leg does not match transfer 'tr-1': {field}"


def test_the_detail_names_every_field_that_differs() -> None:
    detail = untrusted(leg(to_account="acc-mallory", amount=2_000_000), transfer())
    assert detail == "leg does not match transfer 'tr-1': to_account, amount"


def headers(mac: bytes | None) -> list[tuple[str, bytes | None]]:
    return [("ce_specversion", b"1.0"), (MAC_HEADER, mac)]


def test_a_value_signed_with_the_key_verifies() -> None:
    value = b'{"leg":"credit"}'
    assert verify_leg(KEY, value, headers(sign_leg(KEY, value))) is None


def test_the_mac_is_hex_hmac_sha256_of_the_exact_value() -> None:
    value = b'{"amount":1}'
    assert sign_leg(KEY, value) == hmac.new(KEY, value, hashlib.sha256).hexdigest().encode()


def test_the_derived_key_is_hmac_of_the_label_under_the_jwt_secret() -> None:
    expected = hmac.new(b"s" * 32, b"tally.transfer.leg.v1", hashlib.sha256).digest()
    assert derive_leg_key("s" * 32) == expected


def test_a_header_name_in_upper_case_is_the_same_header() -> None:
    value = b"{}"
    assert verify_leg(KEY, value, [("CE_LEGMAC", sign_leg(KEY, value))]) is None


@pytest.mark.parametrize(
    ("value", "given", "detail"),
    [
        (b"{}", [], "no ce_legmac header"),
        (b"{}", [(MAC_HEADER, None)], "ce_legmac is null"),
        (b"{}", [(MAC_HEADER, b"00"), (MAC_HEADER, b"00")], "ce_legmac is given 2 times"),
        (None, [(MAC_HEADER, b"00")], "the leg has no value to check"),
        (b"{}", [(MAC_HEADER, b"not hex \xff")], "ce_legmac does not match the leg"),
        (b"{}", [(MAC_HEADER, sign_leg(KEY, b"{ }"))], "ce_legmac does not match the leg"),
        (
            b"{}",
            [(MAC_HEADER, sign_leg(b"another key", b"{}"))],
            "ce_legmac does not match the leg",
        ),
        (b"{}", [(MAC_HEADER, sign_leg(KEY, b"{}").upper())], "ce_legmac does not match the leg"),
    ],
)
def test_a_leg_without_a_valid_mac_is_untrusted(
    value: bytes | None, given: list[tuple[str, bytes | None]], detail: str
) -> None:
    assert verify_leg(KEY, value, given) == detail


@given(
    value=st.one_of(st.none(), st.binary(max_size=64)),
    given=st.lists(
        st.tuples(
            st.sampled_from([MAC_HEADER, "CE_LegMac", "ce_id", "other"]),
            st.one_of(st.none(), st.binary(max_size=70)),
        ),
        max_size=4,
    ),
)
def test_verify_never_raises_and_accepts_only_the_one_right_mac(
    value: bytes | None, given: list[tuple[str, bytes | None]]
) -> None:
    detail = verify_leg(KEY, value, given)
    macs = [v for n, v in given if n.lower() == MAC_HEADER]
    genuine = value is not None and macs == [sign_leg(KEY, value)]
    assert (detail is None) == genuine
