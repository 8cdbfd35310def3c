"""Transfer legs carry a MAC: only a worker holding the leg key can make one (contract §8.8)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

MAC_HEADER = "ce_legmac"  # a CloudEvents extension: hex HMAC-SHA256 of the record's value
DERIVATION_LABEL = b"tally.transfer.leg.v1"


def derive_leg_key(jwt_secret: str) -> bytes:
    """The leg key when TALLY_LEG_SECRET is unset: the HS256 secret's holders only (ADR 6)."""
    return hmac.new(jwt_secret.encode(), DERIVATION_LABEL, hashlib.sha256).digest()


def sign_leg(key: bytes, value: bytes) -> bytes:
    """The `ce_legmac` header value of a leg record whose value is exactly `value`."""
    return hmac.new(key, value, hashlib.sha256).hexdigest().encode()


def verify_leg(
    key: bytes, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> str | None:
    """None if a worker holding `key` signed this value; else why not. Never raises."""
    # Header names are matched as the codec matches `ce_*` headers: case-insensitively.
    macs = [raw for name, raw in headers if isinstance(name, str) and name.lower() == MAC_HEADER]
    if not macs:
        return f"no {MAC_HEADER} header"
    if len(macs) > 1:
        return f"{MAC_HEADER} is given {len(macs)} times"
    mac = macs[0]
    if not isinstance(mac, bytes):
        return f"{MAC_HEADER} is null"
    if not isinstance(value, bytes):
        return "the leg has no value to check"
    if not hmac.compare_digest(mac, sign_leg(key, value)):
        return f"{MAC_HEADER} does not match the leg"
    return None
