"""A transfer's later steps: the credit leg on the destination, the refund on the source."""

from dataclasses import replace

from handlers.decision import Context, Decision, Facts
from handlers.postings import post
from models.documents import Account, TransferLeg, TransferRecord, TransferState
from models.events import RejectionReason, TransferCompleted, TransferFailed


def decide_leg(leg: TransferLeg, facts: Facts, ctx: Context) -> Decision:
    """Settle an in-flight transfer; `facts.account` is the account the leg acts on."""
    # Journal entries carry the transfer command's id, whatever message carries the leg.
    ctx = replace(ctx, command_id=leg.command_id)
    return _credit(leg, facts, ctx) if leg.leg == "credit" else _refund(leg, facts, ctx)


# What a leg must repeat of the debit it settles: it moves money only as that debit said.
_MATCHED = ("command_id", "from_account", "to_account", "amount", "currency")


def untrusted(leg: TransferLeg, transfer: TransferRecord | None) -> str | None:
    """Why `leg` is not a leg of a debit still in flight (SPEC §8.8); None if it is one.

    `transfer` is the stored transfer of `leg.transfer_id`, as the debit wrote it (`debited`)
    before its leg was sent. A redelivered leg is a duplicate, found before this check.
    """
    if transfer is None or transfer.id != leg.transfer_id:
        return f"no transfer {leg.transfer_id!r} was debited"
    if transfer.state != "debited":
        return f"transfer {leg.transfer_id!r} is no longer in flight: {transfer.state}"
    differ = [name for name in _MATCHED if getattr(leg, name) != getattr(transfer, name)]
    if differ:
        return f"leg does not match transfer {leg.transfer_id!r}: {', '.join(differ)}"
    return None


def _refusal(leg: TransferLeg, account: Account | None) -> RejectionReason | None:
    if account is None:
        return "account_not_found"
    if account.status == "closed":
        return "account_closed"
    return "currency_mismatch" if account.currency != leg.currency else None


def _credit(leg: TransferLeg, facts: Facts, ctx: Context) -> Decision:
    # Frozen destinations are credited: frozen accounts accept inflows (SPEC §4).
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
    # the money nowhere (SPEC §4, §8.4). Ops deal with a credited closed account.
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
