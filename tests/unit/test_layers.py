"""The import rule of the layers, as ruff enforces it (STYLE.md; ADR 11 for faust)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUFF = str(Path(sys.executable).with_name("ruff"))


def banned(path: str, source: str) -> bool:
    """Whether ruff refuses `source` as the content of `path` for a banned import (TID251)."""
    done = subprocess.run(
        [RUFF, "check", "--output-format", "concise", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    return "TID251" in done.stdout


@pytest.mark.parametrize(
    "path", ["streams/app.py", "streams/pipeline.py", "streams/api/app.py", "models/events.py"]
)
def test_faust_may_not_be_imported_outside_the_watch(path: str) -> None:
    assert banned(path, "import faust\n")
    assert banned(path, "from mode import Service\n")


def test_the_watch_may_import_faust() -> None:
    assert not banned("streams/watch/app.py", "import faust\nfrom mode import Service\n")


def test_the_shell_keeps_its_other_adapters_and_the_core_none() -> None:
    assert not banned("streams/app.py", "import aiokafka\nimport pymongo\n")
    assert banned("handlers/velocity.py", "import aiokafka\n")
