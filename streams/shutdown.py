"""A graceful stop's clock: the deadline of TALLY_SHUTDOWN_TIMEOUT, and the attempts it cuts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

log = logging.getLogger("tally.worker")
_CLOSE_RESERVE_S = 5.0  # of TALLY_SHUTDOWN_TIMEOUT, kept for closing the clients


class Shutdown:
    """Asked once (SIGTERM, Ctrl-C); from then on every batch attempt has a deadline."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._deadline = float("inf")
        self.asked = asyncio.Event()
        self._attempt: asyncio.Timeout | None = None  # bounds the batch attempt in flight

    def request(self) -> None:
        if self.asked.is_set():
            return
        log.info("stopping: finishing the batch in flight")
        self._deadline = time.monotonic() + self._timeout
        self.asked.set()
        if self._attempt is not None:
            # A batch waiting on a database that does not answer must not outlive the
            # deadline; cutting it is as safe as a crash at that instant (ADR 0004).
            self._attempt.reschedule(self.cut_at())

    def time_left(self) -> float:
        """Until a batch must give up: the deadline less the time to close the clients."""
        reserve = min(_CLOSE_RESERVE_S, self._timeout / 4)
        return self._deadline - reserve - time.monotonic()

    def until_deadline(self) -> float:
        return self._deadline - time.monotonic()

    def cut_at(self) -> float | None:
        """Loop time at which a batch attempt is cut; None while no stop is asked."""
        if not self.asked.is_set():
            return None
        return asyncio.get_running_loop().time() + self.time_left()

    @contextlib.asynccontextmanager
    async def bounded(self) -> AsyncIterator[None]:
        """An attempt that a stop asked for meanwhile cuts at the deadline."""
        try:
            async with asyncio.timeout_at(self.cut_at()) as self._attempt:
                yield
        finally:
            self._attempt = None  # request() may only reschedule an attempt still running

    async def sleep(self, seconds: float) -> None:
        """Sleep, unless a stop is asked meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.asked.wait()
