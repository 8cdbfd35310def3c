"""Ids Tally gives its own records and messages: one place, so none is built twice."""

LEG_TYPE = "tally.transfer.leg.v1"  # CloudEvents type of the legs on ledger.transfers

# Commands and legs share the inbox; the prefixes keep a command id from posing as a leg's.
_COMMAND, _LEG = "c:", "l:"


def command_inbox_id(command_id: str) -> str:
    """The inbox record of a command's decision."""
    return f"{_COMMAND}{command_id}"


def leg_message_id(command_id: str, leg: str) -> str:
    """The `ce_id` of a transfer leg: the transfer command's id and `credit` or `refund`."""
    return f"{command_id}:{leg}"


def leg_inbox_id(command_id: str, leg: str) -> str:
    """The inbox record of a leg's decision."""
    return f"{_LEG}{leg_message_id(command_id, leg)}"


def is_command_inbox_id(inbox_id: str) -> bool:
    return inbox_id.startswith(_COMMAND)
