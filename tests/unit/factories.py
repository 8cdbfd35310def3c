"""Builders of test values: accounts, contexts, principals."""

from datetime import UTC, datetime
from typing import Any

from handlers.auth import Principal
from handlers.decision import Context, Decision, Facts, Rejection
from handlers.ledger import decide
from models.commands import Command
from models.documents import Account

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DAY = "2025-03-14"
CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "JPY"})
OPS = Principal("ops-1", frozenset({"ops"}))
PAYMENTS = Principal("psp", frozenset({"payments"}))
OWNER = Principal("alice", frozenset({"customer"}))
STRANGER = Principal("mallory", frozenset({"customer"}))


def context(command_id: str = "cmd-1", *, day: str = DAY, now: datetime = NOW) -> Context:
    return Context(
        command_id=command_id,
        message_id=command_id,
        now=now,
        day=day,
        currencies=CURRENCIES,
    )


def account(**changes: Any) -> Account:
    fields: dict[str, Any] = {
        "id": "acc-1",
        "owner_id": "alice",
        "currency": "EUR",
        "status": "open",
        "balance": 1_000,
        "overdraft_limit": 0,
        "daily_outflow_limit": None,
        "created_at": NOW,
        "updated_at": NOW,
        "version": 3,
    }
    return Account(**(fields | changes))


def run(
    command: Command,
    acc: Account | None,
    principal: Principal = OPS,
    ctx: Context | None = None,
    *,
    external_ref_used: bool = False,
    transfer_id_used: bool = False,
) -> Decision | Rejection:
    facts = Facts(acc, external_ref_used=external_ref_used, transfer_id_used=transfer_id_used)
    return decide(command, principal, facts, ctx or context())


def accepted(result: Decision | Rejection) -> Decision:
    assert isinstance(result, Decision), result
    return result


def reason(result: Decision | Rejection) -> str:
    assert isinstance(result, Rejection), result
    return result.reason
