"""Offsets are committed in order, and only for partitions the worker still owns."""

from __future__ import annotations

from typing import Any

import pytest

from streams.commits import Commits

pytestmark = pytest.mark.unit


class Consumer:
    def __init__(self, owned: set[str]) -> None:
        self.owned = owned
        self.commits: list[dict[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)

    def assignment(self) -> set[Any]:
        return set(self.owned)

    def highwater(self, tp: Any) -> int | None:
        return None


async def test_commits_go_out_in_order_one_at_a_time() -> None:
    consumer = Consumer({"a", "b"})
    commits = Commits(consumer)
    await commits.commit({"a": 3})
    await commits.commit({"a": 5, "b": 1})
    await commits.settle()
    assert consumer.commits == [{"a": 3}, {"a": 5, "b": 1}]


async def test_a_partition_revoked_meanwhile_is_left_to_its_new_owner() -> None:
    consumer = Consumer({"a", "b"})
    commits = Commits(consumer)
    consumer.owned = {"b"}  # "a" went to another worker while this batch was in flight
    await commits.commit({"a": 9, "b": 2})
    await commits.settle()
    consumer.owned = set()
    await commits.commit({"a": 10})
    await commits.settle()
    assert consumer.commits == [{"b": 2}]
