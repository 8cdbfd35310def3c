"""What the watch publishes: the alert on `ledger.events`, the freeze on `ledger.commands`.

Both have ids derived from the outflow that passed the threshold, and times from the alert,
so an alert published again after a crash is the same CloudEvent (consumers dedupe by `id`,
as for outcomes) and its freeze the same command (the workers answer a command id once).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson

from handlers.velocity import Alert
from models.commands import FreezeAccount
from models.events import VelocityExceeded
from streams.codec import Headers, binary_headers
from streams.watch.reading import moment

_NAMESPACE = uuid.UUID("0b8a3c52-6d1e-5f0a-9c7e-7a11e0c0ffee")
FREEZE_REASON = "velocity"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


def alert_id(account: str, alert: Alert) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"velocity:{account}:{alert.trigger}"))


def freeze_id(account: str, alert: Alert) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"freeze:{alert_id(account, alert)}"))


def velocity_exceeded(account: str, alert: Alert, window_s: int) -> VelocityExceeded:
    return VelocityExceeded(
        account_id=account,
        count=alert.count,
        window_s=window_s,
        first_at=moment(alert.first_at),
        last_at=moment(alert.last_at),
    )


def alert_message(topic: str, account: str, alert: Alert, window_s: int, source: str) -> Message:
    """`ledger.risk.velocity_exceeded.v1`: it answers no command, so its `correlationid` is
    its own id; `causationid` is the outflow that passed the threshold."""
    event = velocity_exceeded(account, alert, window_s)
    attributes = {
        "id": alert_id(account, alert),
        "source": source,
        "type": VelocityExceeded.TYPE,
        "time": _rfc3339(moment(alert.last_at)),
    }
    trailing = {
        "subject": account,
        "correlationid": attributes["id"],
        "causationid": alert.trigger,
    }
    value = orjson.dumps(event.model_dump(mode="json"))
    return Message(topic, account.encode(), value, binary_headers(attributes, trailing=trailing))


def freeze_message(topic: str, account: str, alert: Alert, source: str, token: str) -> Message:
    """`ledger.account.freeze.v1` (reason `velocity`), keyed by the account as contract §1 asks."""
    attributes = {
        "id": freeze_id(account, alert),
        "source": source,
        "type": FreezeAccount.TYPE,
        "time": _rfc3339(moment(alert.last_at)),
        "subject": account,
        "authtoken": token,
    }
    command = FreezeAccount(account_id=account, reason=FREEZE_REASON)
    value = orjson.dumps(command.model_dump(mode="json"))
    return Message(topic, account.encode(), value, binary_headers(attributes))


def _rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
