"""Only Tally moves money (contract §8.8): a leg must match a debit still in flight, and be signed."""

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.legs import Journal, journal_ids, journal_of, own_transfer, untrusted
from models.documents import Entry, TransferLeg, TransferRecord, TransferState
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


def test_a_leg_of_another_command_with_no_debit_of_its_own_is_untrusted() -> None:
    detail = untrusted(leg(command_id="cmd-other"), transfer(), journal(debit=None))
    assert detail == "no transfer 'tr-1' was debited by 'cmd-other'"


# Two transfers with one transfer id from different partitions (ADR 4): the second has no
# transfers document of its own, and its legs are checked against the journal instead.


def debit(**changes: Any) -> Entry:
    fields: dict[str, Any] = {
        "id": "cmd-t:transfer_out",
        "account_id": "acc-1",
        "amount": -400,
        "balance_after": 600,
        "command_id": "cmd-t",
        "kind": "transfer_out",
        "transfer_id": "tr-1",
        "at": NOW,
    }
    return Entry(**(fields | changes))


def journal(**changes: Any) -> Journal:
    fields: dict[str, Any] = {"debit": debit(), "source_currency": "EUR", "ended": None}
    return Journal(**(fields | changes))


FIRST = transfer(command_id="cmd-first", to_account="acc-3", amount=7)


@pytest.mark.parametrize("stored", [FIRST, None], ids=["another command's", "none"])
@pytest.mark.parametrize("kind", ["credit", "refund"])
def test_a_leg_without_its_own_transfer_document_is_trusted_on_its_debit_entry(
    stored: TransferRecord | None, kind: str
) -> None:
    reason = "account_closed" if kind == "refund" else None
    assert untrusted(leg(leg=kind, reason=reason), stored, journal()) is None


def test_a_leg_with_its_own_transfer_document_is_checked_against_it_not_the_journal() -> None:
    detail = untrusted(leg(), transfer(state="completed"), journal())
    assert detail == "transfer 'tr-1' is no longer in flight: completed"


@pytest.mark.parametrize("state", ["completed", "failed"])
def test_a_leg_whose_saga_the_journal_shows_ended_is_untrusted(state: str) -> None:
    detail = untrusted(leg(), FIRST, journal(ended=state))
    assert detail == f"transfer 'tr-1' is no longer in flight: {state}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from_account", "acc-9"),
        ("amount", 2_000_000),
        ("currency", "USD"),
        ("transfer_id", "tr-9"),
    ],
)
def test_a_leg_that_differs_from_its_debit_entry_is_untrusted(field: str, value: Any) -> None:
    detail = untrusted(leg(**{field: value}), FIRST, journal())
    assert detail == f"leg does not match its debit 'cmd-t:transfer_out': {field}"


def test_an_unknown_source_currency_does_not_match() -> None:
    detail = untrusted(leg(), None, journal(source_currency=None))
    assert detail == "leg does not match its debit 'cmd-t:transfer_out': currency"


def test_a_debit_entry_is_never_proof_when_the_transfer_document_is_the_legs_own() -> None:
    # The document wins: a leg altered to its own debit's amount still differs from it.
    assert untrusted(leg(amount=7), transfer(), journal(debit=debit(amount=-7))) is not None


def test_the_journal_of_a_command_is_its_debit_and_either_ending() -> None:
    assert journal_ids("cmd-t") == ["cmd-t:transfer_out", "cmd-t:transfer_in", "cmd-t:refund"]


@pytest.mark.parametrize(
    ("kinds", "ended"),
    [([], None), (["transfer_in"], "completed"), (["refund"], "failed")],
)
def test_the_journal_tells_whether_the_saga_ended(
    kinds: list[str], ended: TransferState | None
) -> None:
    entries = {"cmd-t:transfer_out": debit()} | {f"cmd-t:{k}": debit() for k in kinds}
    assert journal_of("cmd-t", entries, "EUR") == Journal(debit(), "EUR", ended)


def test_a_saga_ended_earlier_in_the_batch_is_ended_before_the_journal_shows_it() -> None:
    entries = {"cmd-t:transfer_out": debit()}
    assert journal_of("cmd-t", entries, "EUR", "completed").ended == "completed"
    assert journal_of("cmd-other", entries, "EUR").debit is None


def test_a_transfer_document_is_a_legs_own_only_with_its_id_and_command_id() -> None:
    assert own_transfer(leg(), transfer()) == transfer()
    assert own_transfer(leg(), FIRST) is None
    assert own_transfer(leg(), transfer(id="tr-2")) is None
    assert own_transfer(leg(), None) is None


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
