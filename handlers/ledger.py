"""The entry point of the rules: permission, then the command's handler."""

from collections.abc import Callable
from typing import Any

from handlers.accounts import (
    handle_close_account,
    handle_freeze_account,
    handle_open_account,
    handle_set_limits,
    handle_unfreeze_account,
)
from handlers.auth import Principal
from handlers.decision import Context, Decision, Facts, Rejection
from handlers.legs import decide_leg
from handlers.money import handle_deposit, handle_withdrawal
from handlers.permissions import permitted
from handlers.transfers import handle_transfer
from models.commands import (
    CloseAccount,
    Command,
    Deposit,
    FreezeAccount,
    OpenAccount,
    SetLimits,
    Transfer,
    UnfreezeAccount,
    Withdrawal,
)

# The first argument is the command class the handler is registered under; `decide`
# dispatches on `type(command)`, which mypy cannot tie to the key, hence `Any`.
Handler = Callable[[Any, Facts, Context], Decision | Rejection]

COMMAND_HANDLERS: dict[type[Command], Handler] = {
    OpenAccount: handle_open_account,
    Deposit: handle_deposit,
    Withdrawal: handle_withdrawal,
    Transfer: handle_transfer,
    FreezeAccount: handle_freeze_account,
    UnfreezeAccount: handle_unfreeze_account,
    CloseAccount: handle_close_account,
    SetLimits: handle_set_limits,
}

__all__ = ["COMMAND_HANDLERS", "Handler", "decide", "decide_leg"]


def decide(
    command: Command, principal: Principal, facts: Facts, ctx: Context
) -> Decision | Rejection:
    """Decide one admitted command; `facts.account` is the account it acts on (`account_key`)."""
    if not permitted(command, principal, facts.account):
        return Rejection("forbidden", f"{principal.sub} may not send {command.TYPE} here")
    return COMMAND_HANDLERS[type(command)](command, facts, ctx)
