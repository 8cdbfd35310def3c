"""The watch's batch processing with fake tables, broker and producer: alerts, freezes, volumes,
restarts and records faust failed to deliver (contract §16, ADR 11)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from streams.codec import encode
from streams.outcomes import outcome_id
from streams.settings import Settings
from streams.watch import views
from streams.watch.messages import Message
from streams.watch.positions import Positions, dump_next, load_next
from streams.watch.process import Watcher
from streams.watch.reading import read
from streams.watch.signing import Signer
from streams.watch.tables import Shelf, dump_velocity, dump_volume, load_velocity, load_volume

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TALLY_"):
            monkeypatch.delenv(name)


SECRET = "unit-secret-0123456789abcdef0123456789"
T0 = datetime(2026, 11, 24, 3, 35, tzinfo=UTC)


class FakeTable:
    """What Shelf needs of a faust table: its store; and a producer of its changelog."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog: list[tuple[int, bytes, bytes | None]] = []

    async def send(self, topic: str, partition: int, key: bytes, value: bytes | None) -> Any:
        self.changelog.append((partition, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)  # acked at once
        return future

    def shelf(self, load: Any, dump: Any) -> Shelf[Any]:
        return Shelf(self, "changelog", self.send, load, dump)


@dataclass
class FakeBroker:
    generation_id: int = 1
    sought: list[tuple[int, int]] = field(default_factory=list)

    def generation(self) -> int:
        return self.generation_id

    async def earliest(self, partition: int) -> int:
        return 0

    async def seek(self, partition: int, offset: int) -> None:
        self.sought.append((partition, offset))


@dataclass
class Record:
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Event:
    message: Record


@dataclass
class Deployment:
    """The watch's tables, which outlive a Watcher as changelogs outlive a process."""

    velocity: FakeTable = field(default_factory=FakeTable)
    volumes: FakeTable = field(default_factory=FakeTable)
    positions: FakeTable = field(default_factory=FakeTable)
    broker: FakeBroker = field(default_factory=FakeBroker)
    sent: list[Message] = field(default_factory=list)

    def watcher(self, now: datetime = T0 + timedelta(minutes=1), **env: Any) -> Watcher:
        given = {"watch_max_outflows": 5, "watch_window_s": 10, "watch_freeze": True} | env
        settings = Settings(jwt_secret=SECRET, **given)

        async def send(message: Message) -> None:
            self.sent.append(message)

        return Watcher(
            settings,
            self.velocity.shelf(load_velocity, dump_velocity),
            self.volumes.shelf(load_volume, dump_volume),
            send,
            Signer(settings) if settings.watch_freeze else None,
            Positions(self.positions.shelf(load_next, dump_next), self.broker),
            clock=lambda: now,
        )

    def of_type(self, event_type: str) -> list[Message]:
        return [m for m in self.sent if dict(m.headers).get("ce_type") == event_type.encode()]


def outcome(offset: int, event_type: str, data: dict[str, Any], at: datetime) -> Event:
    value, headers = encode(
        {
            "id": outcome_id(f"cmd-{offset}"),
            "source": "tally",
            "type": event_type,
            "time": at.isoformat().replace("+00:00", "Z"),
            "subject": data.get("account_id") or data.get("from_account"),
            "correlationid": f"cmd-{offset}",
            "causationid": f"cmd-{offset}",
            "data": data,
        }
    )
    return Event(Record(0, offset, value, headers))


def withdrawals(account: str, first: int, count: int, start: datetime = T0) -> list[Event]:
    return [
        outcome(
            first + i,
            "ledger.withdrawn.v1",
            {
                "account_id": account,
                "amount": 100,
                "currency": "EUR",
                "external_ref": f"r{first + i}",
                "balance": 0,
            },
            start + timedelta(milliseconds=100 * (first + i)),
        )
        for i in range(count)
    ]


ALERT = "ledger.risk.velocity_exceeded.v1"
FREEZE = "ledger.account.freeze.v1"


async def test_a_burst_over_the_threshold_alerts_once_and_freezes_the_account() -> None:
    deployment = Deployment()
    await deployment.watcher().take(withdrawals("alice", 0, 30))
    alerts, freezes = deployment.of_type(ALERT), deployment.of_type(FREEZE)
    assert (len(alerts), len(freezes)) == (1, 1)
    alert = read(alerts[0].value, alerts[0].headers, 0, 0)
    assert alert is not None
    assert alert.data == {
        "account_id": "alice",
        "count": 6,
        "window_s": 10,
        "first_at": "2026-11-24T03:35:00Z",
        "last_at": "2026-11-24T03:35:00.500000Z",
    }
    headers = {name: value.decode() for name, value in alerts[0].headers}
    assert headers["ce_subject"] == "alice" and alerts[0].key == b"alice"
    assert headers["ce_correlationid"] == headers["ce_id"]
    assert headers["ce_causationid"] == outcome_id("cmd-5")  # the sixth withdrawal's outcome


async def test_the_freeze_is_signed_as_the_watch_with_the_risk_role() -> None:
    deployment = Deployment()
    await deployment.watcher().take(withdrawals("alice", 0, 6))
    (freeze,) = deployment.of_type(FREEZE)
    headers = {name: value.decode() for name, value in freeze.headers}
    token = headers["ce_authtoken"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["sub"], claims["roles"]) == ("tally-watch", ["risk"])
    assert claims["iat"] == int((T0 + timedelta(minutes=1)).timestamp())  # when it was sent
    assert freeze.topic == "ledger.commands" and freeze.key == b"alice"
    assert freeze.value == b'{"account_id":"alice","reason":"velocity"}'


async def test_without_freeze_only_the_alert_is_published() -> None:
    deployment = Deployment()
    await deployment.watcher(watch_freeze=False).take(withdrawals("alice", 0, 6))
    assert (len(deployment.of_type(ALERT)), len(deployment.of_type(FREEZE))) == (1, 0)


async def test_below_the_threshold_nothing_is_published() -> None:
    deployment = Deployment()
    await deployment.watcher().take(withdrawals("alice", 0, 5) + withdrawals("bob", 5, 5))
    assert deployment.sent == []


async def test_a_restart_keeps_the_count_and_never_alerts_twice_for_a_window() -> None:
    deployment = Deployment()
    await deployment.watcher().take(withdrawals("alice", 0, 3))
    restarted = deployment.watcher()  # a new process over the same tables
    await restarted.take(withdrawals("alice", 0, 3) + withdrawals("alice", 3, 3))  # replayed + new
    (alert,) = deployment.of_type(ALERT)
    seen = read(alert.value, alert.headers, 0, 0)
    assert seen is not None and seen.data["first_at"] == "2026-11-24T03:35:00Z"
    await deployment.watcher().take(withdrawals("alice", 0, 12))  # again, and 6 more
    assert len(deployment.of_type(ALERT)) == 1


async def test_an_alert_decided_again_after_a_crash_is_the_same_event() -> None:
    """Published, then killed before its state was written: the replay publishes it again with
    the same id, time and data (consumers dedupe by id), and its freeze with the same id."""
    first = Deployment()
    await first.watcher().take(withdrawals("alice", 0, 6))
    crashed = Deployment()  # the same records, the state never written
    await crashed.watcher().take(withdrawals("alice", 0, 6))
    assert first.of_type(ALERT) == crashed.of_type(ALERT)
    ids = [dict(m.headers)["ce_id"] for m in (*first.of_type(FREEZE), *crashed.of_type(FREEZE))]
    assert ids[0] == ids[1]


async def test_a_record_faust_did_not_deliver_is_read_again_before_the_later_ones() -> None:
    deployment = Deployment()
    watcher = deployment.watcher()
    burst = withdrawals("alice", 0, 6)
    await watcher.take(burst[:2] + burst[3:])  # offset 2 never delivered
    assert deployment.broker.sought == [(0, 2)]
    assert deployment.sent == [] and watcher.positions.next == {0: 2}
    await watcher.take(burst[2:])  # delivered again from offset 2
    assert len(deployment.of_type(ALERT)) == 1
    assert watcher.positions.next == {0: 6}


async def test_volumes_count_each_outcome_once_per_currency_type_and_minute() -> None:
    deployment = Deployment()
    watcher = deployment.watcher(watch_freeze=False)
    deposit = outcome(
        3,
        "ledger.deposited.v1",
        {"account_id": "bob", "amount": 700, "currency": "USD", "external_ref": "p", "balance": 1},
        T0,
    )
    batch = [*withdrawals("alice", 0, 3), deposit]
    await watcher.take(batch)
    await watcher.take(batch)  # delivered again: counted once
    volumes = deployment.volumes.shelf(load_volume, dump_volume)
    now = int((T0 + timedelta(seconds=30)).timestamp() * 1_000_000)
    shown = views.volumes(volumes, {0}, now, minutes=5)
    assert shown["volumes"] == [
        {"minute": "2026-11-24T03:35:00Z", "currency": "EUR", "type": "ledger.withdrawn.v1",
         "count": 3, "amount": 300},
        {"minute": "2026-11-24T03:35:00Z", "currency": "USD", "type": "ledger.deposited.v1",
         "count": 1, "amount": 700},
    ]  # fmt: skip


async def test_an_alert_for_a_window_that_ended_a_day_ago_is_kept_but_not_published() -> None:
    """A first start reading a long history raises no day-old alarm, and freezes nothing."""
    deployment = Deployment()
    await deployment.watcher(now=T0 + timedelta(days=2)).take(withdrawals("alice", 0, 6))
    assert deployment.sent == []
    state = deployment.velocity.shelf(load_velocity, dump_velocity).get(0, "alice")
    assert state is not None and state.alert is not None and state.alert.count == 6
