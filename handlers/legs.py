"""A transfer's later steps: the credit leg on the destination, the refund on the source."""

from collections.abc import Mapping
from dataclasses import dataclass, replace

from handlers.decision import Context, Decision, Facts
from handlers.postings import post
from models.documents import Account, Entry, EntryKind, TransferLeg, TransferRecord, TransferState
from models.events import RejectionReason, TransferCompleted, TransferFailed


def decide_leg(leg: TransferLeg, facts: Facts, ctx: Context) -> Decision:
    """Settle an in-flight transfer; `facts.account` is the account the leg acts on."""
    # Journal entries carry the transfer command's id, whatever message carries the leg.
    ctx = replace(ctx, command_id=leg.command_id)
    return _credit(leg, facts, ctx) if leg.leg == "credit" else _refund(leg, facts, ctx)


# What a leg must repeat of the debit it settles: it moves money only as that debit said.
_MATCHED = ("command_id", "from_account", "to_account", "amount", "currency")
# The kinds of entry that end a transfer's saga, and the transfer state each one means.
_ENDINGS: dict[EntryKind, TransferState] = {"transfer_in": "completed", "refund": "failed"}


@dataclass(frozen=True, slots=True)
class Journal:
    """The journal's word on one transfer command, for a leg whose transfer document is not its
    own (two transfers with one `transfer_id`, ADR 4): its debit, and whether its saga ended."""

    debit: Entry | None  # `<command id>:transfer_out`
    source_currency: str | None  # the debited account's: entries carry no currency
    ended: TransferState | None = None  # a `transfer_in` or `refund` entry: completed, failed


def journal_ids(command_id: str) -> list[str]:
    """The entries that tell a transfer command's saga: its debit, and either ending."""
    return [f"{command_id}:{kind}" for kind in ("transfer_out", *_ENDINGS)]


def journal_of(
    command_id: str,
    entries: Mapping[str, Entry],
    source_currency: str | None,
    ended: TransferState | None = None,
) -> Journal:
    """What `entries` (by id, loaded with `journal_ids`) tell of `command_id`'s saga; `ended`:
    how it ended earlier in the same batch, before the journal holds it."""
    for kind, state in _ENDINGS.items():
        if ended is None and f"{command_id}:{kind}" in entries:
            ended = state
    return Journal(entries.get(f"{command_id}:transfer_out"), source_currency, ended)


def own_transfer(leg: TransferLeg, transfer: TransferRecord | None) -> TransferRecord | None:
    """`transfer` if it is the one `leg`'s command debited, else None (ADR 4: a transfer id
    reused from another partition has the first command's document)."""
    if transfer is None or (transfer.id, transfer.command_id) != (leg.transfer_id, leg.command_id):
        return None
    return transfer


def untrusted(
    leg: TransferLeg, transfer: TransferRecord | None, journal: Journal | None = None
) -> str | None:
    """Why `leg` is not a leg of a debit still in flight (contract §8.8); None if it is one.

    `transfer` is the stored transfer of `leg.transfer_id`, as the debit wrote it (`debited`)
    before its leg was sent. When it is missing or another command's, the leg is checked
    against `journal` instead: the debit's entry is written in the same flush, before the leg
    is sent. A redelivered leg is a duplicate, found before this check.
    """
    own = own_transfer(leg, transfer)
    if own is not None:
        return _against_transfer(leg, own)
    if journal is None or journal.debit is None:
        by = "" if transfer is None else f" by {leg.command_id!r}"
        return f"no transfer {leg.transfer_id!r} was debited{by}"
    return _against_journal(leg, journal.debit, journal)


def _against_transfer(leg: TransferLeg, transfer: TransferRecord) -> str | None:
    if transfer.state != "debited":
        return f"transfer {leg.transfer_id!r} is no longer in flight: {transfer.state}"
    differ = [name for name in _MATCHED if getattr(leg, name) != getattr(transfer, name)]
    if differ:
        return f"leg does not match transfer {leg.transfer_id!r}: {', '.join(differ)}"
    return None


def _against_journal(leg: TransferLeg, debit: Entry, journal: Journal) -> str | None:
    if journal.ended is not None:
        return f"transfer {leg.transfer_id!r} is no longer in flight: {journal.ended}"
    # `to_account` is in no entry: on this path the MAC alone keeps it as the debit sent it.
    found = {
        "command_id": debit.command_id,
        "transfer_id": debit.transfer_id,
        "from_account": debit.account_id,
        "amount": -debit.amount,
        "currency": journal.source_currency,
    }
    differ = [name for name, value in found.items() if getattr(leg, name) != value]
    if differ:
        return f"leg does not match its debit {debit.id!r}: {', '.join(differ)}"
    return None


def _refusal(leg: TransferLeg, account: Account | None) -> RejectionReason | None:
    if account is None:
        return "account_not_found"
    if account.status == "closed":
        return "account_closed"
    return "currency_mismatch" if account.currency != leg.currency else None


def _credit(leg: TransferLeg, facts: Facts, ctx: Context) -> Decision:
    # Frozen destinations are credited: frozen accounts accept inflows (contract §4).
    account = facts.account
    reason = _refusal(leg, account)
    if account is None or reason is not None:
        refund = leg.model_copy(update={"leg": "refund", "reason": reason})
        return Decision(account=None, leg=refund)
    account, entry = post(account, leg.amount, "transfer_in", ctx, transfer_id=leg.transfer_id)
    fields = leg.model_dump(include={"transfer_id", "from_account", "to_account", "amount"})
    completed = TransferCompleted(**fields, currency=leg.currency, memo=leg.memo)
    return Decision(account, (entry,), completed, transfer=_settled(leg, facts, ctx, "completed"))


def _refund(leg: TransferLeg, facts: Facts, ctx: Context) -> Decision:
    # The refund is never refused, whatever the source's status now (frozen, even closed
    # after its balance reached zero): the debit already happened, and refusing would leave
    # the money nowhere (contract §4, §8.4). Ops deal with a credited closed account.
    reason: RejectionReason = leg.reason or "account_not_found"  # refund legs carry a reason
    fields = leg.model_dump(include={"transfer_id", "from_account", "to_account", "amount"})
    failed = TransferFailed(**fields, currency=leg.currency, reason=reason)
    transfer = _settled(leg, facts, ctx, "failed", reason)
    if facts.account is None:
        # Cannot happen: the source was debited, and accounts are never deleted. Report the
        # failure rather than invent an account; reconciliation will flag the missing money.
        return Decision(account=None, outcome=failed, transfer=transfer)
    account, entry = post(facts.account, leg.amount, "refund", ctx, transfer_id=leg.transfer_id)
    return Decision(account, (entry,), failed, transfer=transfer)


def _settled(
    leg: TransferLeg, facts: Facts, ctx: Context, state: TransferState, reason: str | None = None
) -> TransferRecord:
    """The transfer record in its final state, keeping the stored one's `created_at`."""
    if facts.transfer is not None:
        update = {"state": state, "reason": reason, "updated_at": ctx.now}
        return facts.transfer.model_copy(update=update)
    return TransferRecord(
        id=leg.transfer_id,
        from_account=leg.from_account,
        to_account=leg.to_account,
        amount=leg.amount,
        currency=leg.currency,
        state=state,
        command_id=leg.command_id,
        memo=leg.memo,
        reason=reason,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
