"""Outcome events as stored (inbox, outboxes) and as published, with deterministic ids."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

# Outcome ids are uuid5(command id): every path that publishes a command's outcome, first time
# or after a crash, a redelivery or a duplicate send, publishes the same id (contract §8.1).
_NAMESPACE = uuid.UUID("6f1d7c1e-3b0a-5b8e-9d4c-7a11e0c0ffee")

StoredEvent = dict[str, Any]


def outcome_id(command_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, command_id))


def stored_event(
    data: BaseModel,
    event_type: str,
    *,
    subject: str | None,
    command_id: str,
    causation_id: str,
    source: str,
    time: datetime,
    traceparent: str | None,
) -> StoredEvent:
    """The outcome exactly as it will be published, so a republish is byte-identical."""
    return {
        "id": outcome_id(command_id),
        "source": source,
        "type": event_type,
        "time": time.isoformat().replace("+00:00", "Z"),
        "subject": subject,
        "correlationid": command_id,
        "causationid": causation_id,
        "traceparent": traceparent,
        "data": data.model_dump(mode="json"),
    }
