"""`tally watch` beside a harness deployment: its own process, port, group and changelog topics."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.harness import KAFKA, TALLY, Tally, free_port, wait_ready

ALERT = "ledger.risk.velocity_exceeded.v1"


@dataclass
class Watch:
    tally: Tally
    log: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def group(self) -> str:
        return f"e2e-{self.tally.run}-watch"

    def start(self) -> subprocess.Popen[bytes]:
        env = self.tally.env(
            TALLY_WATCH_GROUP_ID=self.group, TALLY_WATCH_PORT=str(self.port), **self.settings
        )
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([TALLY, "watch"], env=env, stdout=out, stderr=out)
        return self.process

    async def wait_ready(self, timeout: float = 90) -> None:
        await wait_ready(self.process, self.port, timeout)

    def kill(self) -> None:
        """`kill -9`: nothing flushed, nothing committed, no goodbye to the group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 40) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    async def get(self, path: str) -> Any:
        async with (
            ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}{path}") as response,
        ):
            assert response.status == 200, await response.text()
            return orjson.loads(await response.read())

    async def volumes(self, minutes: int = 5) -> list[dict[str, Any]]:
        body = await self.get(f"/v1/volumes?minutes={minutes}")
        return list(body["volumes"])

    async def cleanup(self) -> None:
        """Delete the watch's internal topics (its changelogs and faust's leader topic)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            doomed = [t for t in await admin.list_topics() if t.startswith(f"{self.group}-")]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()


def alerts_of(records: list[Any], account: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(headers, data) of the velocity alerts about `account` among `ledger.events` records."""
    found = []
    for record in records:
        headers = {name: value.decode() for name, value in record.headers}
        if headers.get("ce_type") == ALERT and headers.get("ce_subject") == account:
            found.append((headers, orjson.loads(record.value)))
    return found
