"""What the chaos producer sends: a record, and the outcome set it may get."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

Headers = list[tuple[str, bytes | None]]

OPEN = "ledger.account.open.v1"
DEPOSIT = "ledger.deposit.v1"
WITHDRAW = "ledger.withdrawal.v1"
TRANSFER = "ledger.transfer.v1"
FREEZE = "ledger.account.freeze.v1"
UNFREEZE = "ledger.account.unfreeze.v1"
CLOSE = "ledger.account.close.v1"
LIMITS = "ledger.account.limits.v1"


@dataclass(frozen=True, slots=True)
class Message:
    """One record the chaos producer sends; `expect` is empty for poison."""

    id: str  # the command id, or the poison id
    key: bytes | None
    value: bytes | None
    headers: Headers
    expect: frozenset[str] = frozenset()
    type: str = ""
    data: Any = None
    poison: str | None = None  # expected tally_error_reason


def binary(
    command_id: str, ctype: str, data: Any, token: bytes | None, key: str | None
) -> tuple[bytes | None, bytes, Headers]:
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", command_id.encode()),
        ("ce_source", b"chaos"),
        ("ce_type", ctype.encode()),
        ("content-type", b"application/json"),
    ]
    if token is not None:
        headers.append(("ce_authtoken", token))
    return key.encode() if key else None, orjson.dumps(data), headers


def chunks(items: list[Message], size: int) -> Iterator[list[Message]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
