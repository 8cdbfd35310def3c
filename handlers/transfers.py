"""A transfer's first step, on the source's partition: debit and send the credit leg."""

from handlers.decision import Context, Decision, Facts, Rejection
from handlers.postings import post
from handlers.rules import first, not_closed, not_found, outflow_allowed
from models.commands import Transfer
from models.documents import TransferLeg, TransferRecord


def handle_transfer(cmd: Transfer, facts: Facts, ctx: Context) -> Decision | Rejection:
    if cmd.from_account == cmd.to_account:
        return Rejection("same_account", "a transfer needs two different accounts")
    if facts.transfer_id_used:
        return Rejection("duplicate_transfer", f"transfer {cmd.transfer_id} already exists")
    account = facts.account
    if account is None:
        return not_found(cmd.from_account)
    day = ctx.day
    if rejection := first(
        not_closed(account), outflow_allowed(account, cmd.currency, cmd.amount, day)
    ):
        return rejection
    account, entry = post(account, -cmd.amount, "transfer_out", ctx, transfer_id=cmd.transfer_id)
    # No outcome yet: the money is in flight until the credit (or refund) leg settles it.
    return Decision(account, (entry,), leg=_credit_leg(cmd, ctx), transfer=_debited(cmd, ctx))


def _credit_leg(cmd: Transfer, ctx: Context) -> TransferLeg:
    return TransferLeg(
        leg="credit",
        command_id=ctx.command_id,
        transfer_id=cmd.transfer_id,
        from_account=cmd.from_account,
        to_account=cmd.to_account,
        amount=cmd.amount,
        currency=cmd.currency,
        memo=cmd.memo,
        traceparent=ctx.traceparent,
    )


def _debited(cmd: Transfer, ctx: Context) -> TransferRecord:
    return TransferRecord(
        id=cmd.transfer_id,
        from_account=cmd.from_account,
        to_account=cmd.to_account,
        amount=cmd.amount,
        currency=cmd.currency,
        state="debited",
        command_id=ctx.command_id,
        memo=cmd.memo,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
