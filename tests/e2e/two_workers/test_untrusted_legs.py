"""Only Tally moves money (contract §8.8): records produced to the deployment's ledger.transfers by
someone else (forged, altered, or genuine and sent again) change nothing.

Two workers share the deployment, each owning one of its two partitions, so a transfer between
accounts on different partitions goes through ledger.transfers (one worker owning both settles
it in its batch, ADR 5) and the tests can read its real credit leg there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.legs import MAC_HEADER, derive_leg_key, sign_leg
from tests.e2e.harness import KAFKA, SECRET, Reader, Tally, on_partition, token
from tests.e2e.two_workers.conftest import PARTITIONS

pytestmark = pytest.mark.e2e


LEG_TYPE = "tally.transfer.leg.v1"
STOLEN_KEY = derive_leg_key(SECRET)  # what an attacker holding TALLY_JWT_SECRET can derive


@pytest.fixture(scope="module")
async def attacker(tally: Tally) -> AsyncIterator[Callable[..., Any]]:
    """Produces a record to the deployment's ledger.transfers, as anyone with Write on it can."""
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    await producer.start()

    async def send(value: bytes, key: str, headers: list[tuple[str, bytes]]) -> None:
        await producer.send_and_wait(
            tally.topics["transfers"], value, key=key.encode(), headers=headers
        )

    yield send
    await producer.stop()


async def send(producer: Any, outcomes: Any, ctype: str, data: dict[str, Any]) -> Any:
    auth = token("psp", ["payments"]) if ctype == "ledger.deposit.v1" else None
    cid = await producer.send(ctype, data, auth=auth)
    return (await outcomes.of(cid))[cid]


async def open_with(producer: Any, outcomes: Any, account: str, balance: int) -> None:
    data: dict[str, Any] = {"account_id": account, "owner_id": "owner", "currency": "EUR"}
    opened = await send(producer, outcomes, "ledger.account.open.v1", data)
    assert opened.type == "ledger.account.opened.v1", opened.data
    if balance:
        data = {"account_id": account, "amount": balance, "currency": "EUR", "external_ref": "in"}
        deposited = await send(producer, outcomes, "ledger.deposit.v1", data)
        assert deposited.type == "ledger.deposited.v1", deposited.data


class Scene:
    """A completed transfer src → dst through ledger.transfers, and a bystander `victim`."""

    def __init__(self, new_id: Callable[[str], str]) -> None:
        self.src = on_partition(new_id, "src", 0, PARTITIONS)
        self.dst = on_partition(new_id, "dst", 1, PARTITIONS)
        self.victim = on_partition(new_id, "victim", 1, PARTITIONS)
        self.transfer_id = new_id("t")
        self.command_id = ""
        self.leg: Any = None  # the real credit leg, as read from ledger.transfers

    @property
    def accounts(self) -> list[str]:
        return [self.src, self.dst, self.victim]


@pytest.fixture
async def scene(producer: Any, outcomes: Any, legs: Reader, new_id: Callable[[str], str]) -> Scene:
    s = Scene(new_id)
    await open_with(producer, outcomes, s.src, 1_000)
    await open_with(producer, outcomes, s.dst, 0)
    await open_with(producer, outcomes, s.victim, 0)
    data = {"transfer_id": s.transfer_id, "from_account": s.src, "to_account": s.dst}
    s.command_id = await producer.send(
        "ledger.transfer.v1", data | {"amount": 100, "currency": "EUR"}
    )
    done = (await outcomes.of(s.command_id))[s.command_id]
    assert done.type == "ledger.transfer.completed.v1", done.data
    leg_id = f"{s.command_id}:credit".encode()
    found = await legs.until(lambda rs: any(dict(r.headers)["ce_id"] == leg_id for r in rs))
    s.leg = next(r for r in found if dict(r.headers)["ce_id"] == leg_id)
    return s


async def state(db: Any, scene: Scene) -> tuple[dict[str, int], list[Any]]:
    """Balances and journal of the scene's accounts."""
    wanted = {"$in": scene.accounts}
    balances = {a["_id"]: a["balance"] async for a in db.accounts.find({"_id": wanted})}
    journal = sorted(
        [(e["_id"], e["amount"]) async for e in db.entries.find({"account_id": wanted})]
    )
    return balances, journal


async def dead_letter_of(dlq: Reader, value: bytes) -> dict[str, bytes]:
    found = await dlq.until(lambda rs: any(r.value == value for r in rs))
    return dict(next(r for r in found if r.value == value).headers)


def altered(leg: Any, **changes: Any) -> bytes:
    return orjson.dumps(orjson.loads(leg.value) | changes)


def with_mac(headers: list[tuple[str, bytes]], mac: bytes | None) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in headers if k != MAC_HEADER]
    return kept if mac is None else [*kept, (MAC_HEADER, mac)]


async def assert_untrusted(
    db: Any, dlq: Reader, scene: Scene, attack: Any, value: bytes, key: str, headers: Any
) -> str:
    """Sends the record; it is dead-lettered untrusted_leg and changes nothing. Its detail."""
    before = await state(db, scene)
    await attack(value, key, headers)
    dead = await dead_letter_of(dlq, value)
    assert dead["tally_error_reason"] == b"untrusted_leg"
    assert await state(db, scene) == before
    balances = before[0]
    assert sum(balances.values()) == 1_000 and balances[scene.victim] == 0
    return dead["tally_error_detail"].decode()


async def test_a_forged_leg_without_a_mac_changes_nothing(
    scene: Scene, attacker: Any, dlq: Reader, db: Any, new_id: Callable[[str], str]
) -> None:
    command_id = new_id("forged")
    leg = {
        "leg": "credit",
        "command_id": command_id,
        "transfer_id": new_id("t-forged"),
        "from_account": scene.src,
        "to_account": scene.victim,
        "amount": 2_000_000,
        "currency": "EUR",
    }
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{command_id}:credit".encode()),
        ("ce_source", b"tally"),
        ("ce_type", LEG_TYPE.encode()),
        ("content-type", b"application/json"),
    ]
    value = orjson.dumps(leg)
    detail = await assert_untrusted(db, dlq, scene, attacker, value, scene.victim, headers)
    assert MAC_HEADER in detail


async def test_a_real_leg_altered_keeping_its_mac_changes_nothing(
    scene: Scene, attacker: Any, dlq: Reader, db: Any
) -> None:
    value = altered(scene.leg, to_account=scene.victim, amount=2_000_000)
    headers = list(scene.leg.headers)  # the real leg's ce_legmac, now of other bytes
    await assert_untrusted(db, dlq, scene, attacker, value, scene.victim, headers)


async def test_a_leg_signed_with_a_stolen_key_for_no_debit_changes_nothing(
    scene: Scene, attacker: Any, dlq: Reader, db: Any, new_id: Callable[[str], str]
) -> None:
    # A new command id too: a leg whose message id has an inbox record is a duplicate.
    value = altered(
        scene.leg,
        command_id=new_id("c-none"),
        transfer_id=new_id("t-none"),
        to_account=scene.victim,
    )
    headers = with_mac(list(scene.leg.headers), sign_leg(STOLEN_KEY, value))
    detail = await assert_untrusted(db, dlq, scene, attacker, value, scene.victim, headers)
    assert detail.startswith("no transfer")


async def test_a_real_leg_altered_and_signed_with_a_stolen_key_changes_nothing(
    scene: Scene, attacker: Any, dlq: Reader, db: Any, new_id: Callable[[str], str]
) -> None:
    value = altered(
        scene.leg, command_id=new_id("c-other"), to_account=scene.victim, amount=2_000_000
    )
    headers = with_mac(list(scene.leg.headers), sign_leg(STOLEN_KEY, value))
    detail = await assert_untrusted(db, dlq, scene, attacker, value, scene.victim, headers)
    assert scene.transfer_id in detail


async def test_a_real_leg_sent_again_after_its_transfer_ended_and_its_inbox_expired(
    scene: Scene, attacker: Any, dlq: Reader, db: Any, producer: Any, outcomes: Any
) -> None:
    # dst is written again (its outbox no longer holds the credit), then retention removes
    # the leg's inbox record.
    data = {"account_id": scene.dst, "amount": 1, "currency": "EUR", "external_ref": "later"}
    deposited = await send(producer, outcomes, "ledger.deposit.v1", data)
    assert deposited.type == "ledger.deposited.v1", deposited.data
    removed = await db.inbox.delete_one({"_id": f"l:{scene.command_id}:credit"})
    assert removed.deleted_count == 1
    before = await state(db, scene)

    await attacker(scene.leg.value, scene.dst, list(scene.leg.headers))
    dead = await dead_letter_of(dlq, scene.leg.value)

    assert dead["tally_error_reason"] == b"untrusted_leg"
    assert dead["tally_error_detail"].decode().endswith("no longer in flight: completed")
    assert await state(db, scene) == before


async def test_a_real_leg_sent_again_is_a_duplicate_and_changes_nothing(
    scene: Scene, attacker: Any, outcomes: Any, dlq: Reader, db: Any
) -> None:
    before = await state(db, scene)
    await attacker(scene.leg.value, scene.dst, list(scene.leg.headers))
    # A duplicate republishes its outcome: the same event, under the same id.
    await outcomes.until(lambda _: len(outcomes.by_command().get(scene.command_id, [])) >= 2)

    events = outcomes.by_command()[scene.command_id]
    assert {e.id for e in events} == {events[0].id}
    assert await state(db, scene) == before
    assert before[0] == {scene.src: 900, scene.dst: 100, scene.victim: 0}
    assert not any(r.value == scene.leg.value for r in dlq.records)
