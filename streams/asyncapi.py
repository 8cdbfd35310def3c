"""The AsyncAPI 3.0 contract, generated from the models (served at /asyncapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from models.commands import COMMAND_MODELS
from models.documents import TransferLeg
from models.events import EVENT_MODELS
from models.ids import LEG_TYPE
from streams import __version__
from streams.settings import Settings

_REF = "#/components/schemas/{model}"


def _ce_headers(extensions: dict[str, str]) -> dict[str, Any]:
    properties = {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "ce_source": {"type": "string"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string"},
        "ce_traceparent": {"type": "string", "description": "W3C trace context"},
        "content-type": {"type": "string", "const": "application/json"},
    }
    properties |= {f"ce_{k}": {"type": "string", "description": v} for k, v in extensions.items()}
    return {
        "type": "object",
        "properties": properties,
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type"],
    }


_COMMAND_HEADERS = _ce_headers({"authtoken": "JWT proving the actor (contract §6)"})
_EVENT_HEADERS = _ce_headers(
    {
        "correlationid": "the command id this outcome answers",
        "causationid": "the id of the message that directly caused it",
    }
)


def _message(event_type: str, model: type[BaseModel], headers: dict[str, Any]) -> dict[str, Any]:
    doc = (model.__doc__ or "").strip().splitlines()
    return {
        "name": event_type,
        "title": model.__name__,
        "summary": doc[0] if doc else event_type,
        "contentType": "application/json",
        "headers": headers,
        "payload": {"$ref": _REF.format(model=model.__name__)},
    }


def document(settings: Settings) -> dict[str, Any]:
    commands = {name: _message(name, m, _COMMAND_HEADERS) for name, m in COMMAND_MODELS.items()}
    events = {name: _message(name, m, _EVENT_HEADERS) for name, m in EVENT_MODELS.items()}
    leg_headers = _ce_headers(
        {"legmac": "hex HMAC-SHA256 of the record's value with the workers' leg key (§8.8)"}
    )
    legs = {LEG_TYPE: _message(LEG_TYPE, TransferLeg, leg_headers)}
    models = [*COMMAND_MODELS.values(), *EVENT_MODELS.values(), TransferLeg]
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    messages = {**commands, **events, **legs}
    channel = {
        "commands": (settings.topic_commands, commands, "Commands from upstream producers"),
        "events": (settings.topic_events, events, "Exactly one terminal outcome per command"),
        "transfers": (settings.topic_transfers, legs, "Internal: transfer credit/refund legs"),
        "dlq": (settings.topic_dlq, {}, "Records that cannot be read as a command (contract §7)"),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Tally",
            "version": __version__,
            "description": "Event-driven ledger: commands in, one outcome event out per command.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {"host": settings.kafka_bootstrap, "protocol": "kafka"},
        },
        "channels": {
            key: {
                "address": address,
                "description": description,
                "messages": {_id(n): {"$ref": f"#/components/messages/{_id(n)}"} for n in msgs},
            }
            for key, (address, msgs, description) in channel.items()
        },
        "operations": {
            "receiveCommands": {"action": "receive", "channel": {"$ref": "#/channels/commands"}},
            "sendEvents": {"action": "send", "channel": {"$ref": "#/channels/events"}},
            "sendDeadLetters": {"action": "send", "channel": {"$ref": "#/channels/dlq"}},
            "processTransferLegs": {
                "action": "receive",
                "channel": {"$ref": "#/channels/transfers"},
            },
        },
        "components": {
            "messages": {_id(n): m for n, m in messages.items()},
            "schemas": schemas.get("$defs", {}),
        },
    }


def _id(event_type: str) -> str:
    """AsyncAPI component keys may not contain dots."""
    return event_type.replace(".", "_")
