"""`python -m tests.chaos`: one chaos run; progress on stderr, one JSON summary on stdout."""

from __future__ import annotations

import asyncio
import logging
import sys

from tests.chaos.config import parse
from tests.chaos.runner import run, say
from tests.chaos.summary import dumps


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    # The harness's own clients retry through the outages it causes; their errors are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    summary, report = asyncio.run(run(cfg))
    for check, examples in report.examples.items():
        for example in examples:
            say(f"FAILED {check}: {example}")
    print(dumps(summary), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
