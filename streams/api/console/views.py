"""What the `/v1/ops` routes answer with: the schemas of the OpenAPI document (contract §15)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

Position = Annotated[str, StringConstraints(pattern=r"^\d{1,9}:\d{1,19}$")]


class PartitionRef(BaseModel):
    topic: str
    partition: int


class WorkerView(BaseModel):
    """A worker as its last heartbeat described it; `live` while that is recent."""

    worker_id: str
    host: str
    pid: int | None
    http_port: int | None
    group: str
    partitions: list[PartitionRef]
    ready: bool
    checks: dict[str, str]
    version: str | None
    at: datetime
    live: bool
    seen_seconds_ago: float


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


class OverviewView(BaseModel):
    at: datetime
    workers: list[WorkerView]
    api: Readiness = Field(description="this API process's own /readyz")
    throughput_last_minute: dict[str, int] = Field(description="outcomes by accepted/rejected")
    lag: dict[str, int] = Field(description="latest sample, by `topic/partition`")
    dead_letters: dict[str, int] | None = Field(description="by reason; null if unreadable now")


class ThroughputSeries(BaseModel):
    t: list[int] = Field(description="epoch seconds, oldest first, one per second")
    accepted: list[int]
    rejected: list[int]


class LagSeries(BaseModel):
    t: list[int] = Field(description="epoch seconds of each sample, oldest first")
    partitions: dict[str, list[int | None]] = Field(description="by `topic/partition`")


class SeriesView(BaseModel):
    at: datetime
    throughput: ThroughputSeries
    lag: LagSeries


class HeaderView(BaseModel):
    name: str
    value: str | None


class DeadLetterView(BaseModel):
    """A dead letter, its tokens masked: `ce_authtoken` and like headers, `authtoken` in a
    structured value, and any JWT-shaped text."""

    position: str = Field(description="`partition:offset` in the dead-letter topic")
    partition: int
    offset: int
    reason: str
    detail: str | None
    failed_at: datetime
    original_topic: str | None
    key: str | None
    value: str | None
    value_bytes: int | None
    headers: list[HeaderView]


class DeadLettersPage(BaseModel):
    items: list[DeadLetterView] = Field(description="newest first")
    total: int = Field(description="how many the filter admits")
    counts: dict[str, int] = Field(description="every dead letter, by reason")


class ReplayRequest(BaseModel):
    positions: list[Position] = Field(min_length=1, max_length=1000)


class ReplayResult(BaseModel):
    replayed: int
    skipped: int = Field(description="letters without an original topic")
    missing: list[str] = Field(description="positions that hold no dead letter")
