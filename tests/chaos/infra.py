"""Kafka and the MongoDB-wire server: the shared local pair, or a private pair we may stop."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.fleet import ROOT, free_port

INFRA_SH = ROOT / "deploy" / "local" / "infra.sh"


class InfraError(Exception):
    """infra.sh failed; its output is the message."""


@dataclass(slots=True)
class Infra:
    """Where Tally's brokers are; `private` ones live in `state` and may be stopped."""

    kafka: str
    mongo: str
    private: bool
    env: dict[str, str]
    outages: dict[str, int]

    @classmethod
    def shared(cls, kafka: str, mongo: str) -> Infra:
        return cls(kafka, mongo, False, {}, {})

    @classmethod
    def private_in(cls, state: Path) -> Infra:
        # Stopping the shared broker would break everyone else's tests on this machine: a
        # private pair on free ports, with its own data, logs and pid files (infra.sh env).
        kafka, controller, mongo = free_port(), free_port(), free_port()
        env = {
            "TALLY_INFRA_STATE": str(state),
            "TALLY_INFRA_KAFKA_PORT": str(kafka),
            "TALLY_INFRA_CONTROLLER_PORT": str(controller),
            "TALLY_INFRA_MONGO_PORT": str(mongo),
        }
        return cls(f"127.0.0.1:{kafka}", f"mongodb://127.0.0.1:{mongo}", True, env, {})

    async def sh(self, command: str) -> float:
        """Run `infra.sh command`; returns its duration in seconds."""
        began = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(INFRA_SH),
            command,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise InfraError(f"infra.sh {command} failed:\n{out.decode(errors='replace')}")
        return time.monotonic() - began

    async def up(self, default_pair: bool) -> None:
        if self.private or default_pair:
            await self.sh("up")

    async def down(self) -> None:
        if self.private:
            await self.sh("down")

    async def stop(self, service: str) -> None:
        """Stop `kafka` or `mongo` (private pairs only)."""
        if not self.private:
            raise InfraError("refusing to stop the shared infrastructure; use a private pair")
        await self.sh(f"stop-{service}")
        self.outages[service] = self.outages.get(service, 0) + 1

    async def start(self, service: str) -> None:
        await self.sh(f"start-{service}")
