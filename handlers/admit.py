"""The stateless checks of contract §5, in order: type known, authtoken, schema of `data`."""

from datetime import datetime

from pydantic import ValidationError

from handlers.auth import Principal, TokenKeys, verify_token
from handlers.decision import Rejection
from models.commands import COMMAND_MODELS, Command
from models.events import ErrorItem


def admit(
    type: str,
    data: bytes | object,
    token: str | None,
    keys: TokenKeys,
    now: datetime,
    max_amount: int,
) -> tuple[Command, Principal] | Rejection:
    model = COMMAND_MODELS.get(type)
    if model is None:
        return Rejection("unsupported_type", f"unknown command type {type[:128]!r}")
    principal = verify_token(token, keys, now)
    if isinstance(principal, Rejection):
        return principal
    command = parse_command(model, data, max_amount)
    if isinstance(command, Rejection):
        return command
    return command, principal


def parse_command(
    model: type[Command], data: bytes | object, max_amount: int
) -> Command | Rejection:
    """Validate `data` (raw JSON bytes or a parsed object) strictly against `model`."""
    context = {"max_amount": max_amount}
    try:
        if isinstance(data, bytes | bytearray):
            return model.model_validate_json(data, context=context)
        return model.model_validate(data, context=context)
    except ValidationError as error:
        errors = tuple(ErrorItem(loc=list(e["loc"]), msg=e["msg"]) for e in error.errors())
        return Rejection("invalid", f"data is not a valid {model.TYPE}", errors)
