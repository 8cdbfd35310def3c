"""A one-line progress bar on stderr (stdout carries only the report and the JSON line)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`with Progress("label", total) as bar: bar.update(done)`; redraws at most 10 times/s."""

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self._label = label
        self._total = max(total, 1)
        self._width = width
        self._started = time.monotonic()
        self._drawn = 0.0
        self._done = 0
        self._tty = sys.stderr.isatty()

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *_: object) -> None:
        self._draw(force=True)
        if self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def update(self, done: int) -> None:
        self._done = done
        self._draw()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < (0.1 if self._tty else 5.0):
            return
        self._drawn = now
        share = min(self._done / self._total, 1.0)
        filled = int(share * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        elapsed = now - self._started
        line = f"{self._label:<22} [{bar}] {self._done:>7}/{self._total:<7} {elapsed:6.1f}s"
        sys.stderr.write(("\r" if self._tty else "") + line + ("" if self._tty else "\n"))
        sys.stderr.flush()


def note(message: str) -> None:
    """A status line on stderr."""
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()
