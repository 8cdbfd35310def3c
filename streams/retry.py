"""How long to wait before the next try: doubling, up to TALLY_RETRY_BACKOFF_MAX."""

from __future__ import annotations


class Backoff:
    """Delays of `first`, twice that, ... at most `longest`."""

    def __init__(self, first: float, longest: float) -> None:
        self._next = first
        self._longest = longest

    def delay(self) -> float:
        """The wait before the next try; the one after is twice as long."""
        current = min(self._next, self._longest)
        self._next = min(current * 2, self._longest)
        return current
