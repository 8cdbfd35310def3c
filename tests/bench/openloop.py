"""Open-loop load: commands sent at a fixed rate whatever the answers; latency per command."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.bench.kafka_io import Outcomes
from tests.bench.progress import Progress
from tests.bench.workload import TRANSFER, Record

# Records due are sent every TICK_S, each stamped when it is handed to the producer (linger 0,
# so it leaves at once); every tick is about one produce request. At 2 ms (500 requests/s)
# this process used 0.24-0.27 cores and the broker 0.20-0.21 at 700 commands/s, CPU taken
# from Tally on the same 2 cores; at 5 ms 0.17-0.18 and 0.17. 5 ms is far below a batch
# cycle (~50 ms at half load): Tally sees the same load (docs/performance.md).
TICK_S = 0.005


@dataclass(frozen=True, slots=True)
class Latencies:
    offered_per_s: float
    achieved_per_s: float  # what the producer managed to send
    sent: int
    millis: list[float]  # outcome record timestamp - command record timestamp, sorted
    transfer_millis: list[float]  # the same for transfers only (two hops: debit, credit)
    series: list[tuple[float, float]]  # (seconds since the first send, latency ms), by send

    def percentile(self, p: float, transfers: bool = False) -> float:
        values = self.transfer_millis if transfers else self.millis
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def run(
    bootstrap: str, topic: str, records: list[Record], rate: float, outcomes: Outcomes
) -> Latencies:
    # The load generator's own pauses must not shape the load: a full collection over this
    # process's ~230 000 objects (the pre-built records, the drain's outcomes) stopped it for
    # 110 ms in a 10 000-command run, and sends resumed in a burst. Frozen, they are not walked.
    gc.collect()
    gc.freeze()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    stamps: dict[str, int] = {}
    futures: list[Any] = []
    try:
        started = time.monotonic()
        with Progress(f"open loop {rate:.0f}/s", len(records)) as bar:
            sent = 0
            while sent < len(records):
                due = min(len(records), int((time.monotonic() - started) * rate) + 1)
                for r in records[sent:due]:
                    now_ms = int(time.time() * 1000)
                    stamps[r.command_id] = now_ms
                    futures.append(
                        await producer.send(
                            topic, r.value, key=r.key, headers=r.headers, timestamp_ms=now_ms
                        )
                    )
                sent = max(sent, due)
                bar.update(sent)
                await asyncio.sleep(TICK_S)
        elapsed = time.monotonic() - started
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
        gc.unfreeze()
    done = await outcomes.wait_for(stamps, "open loop outcomes", timeout=300)
    millis = sorted(float(o.timestamp_ms - stamps[o.correlation_id]) for o in done)
    transfers = {r.command_id for r in records if r.type == TRANSFER}
    transfer_millis = sorted(
        float(o.timestamp_ms - stamps[o.correlation_id])
        for o in done
        if o.correlation_id in transfers
    )
    first = min(stamps.values(), default=0)
    series = sorted(
        (
            (stamps[o.correlation_id] - first) / 1000,
            float(o.timestamp_ms - stamps[o.correlation_id]),
        )
        for o in done
    )
    return Latencies(rate, len(records) / elapsed, len(records), millis, transfer_millis, series)
