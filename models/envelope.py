"""The CloudEvents 1.0 attributes and data of an incoming command (SPEC §2)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Envelope(BaseModel):
    """A decoded command record; the shell's codec decides what is a valid envelope."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True
    )

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: str | None = None
    subject: str | None = None
    traceparent: str | None = None
    authtoken: str | None = None
    datacontenttype: str | None = None
    # Raw JSON bytes (binary mode) or the already-parsed `data` member (structured mode).
    data: bytes | object = None
