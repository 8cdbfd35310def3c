"""Which accounts a worker owns: the partition Kafka gives an account's key, and the assignment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.kafka import Ownership, partition_of

pytestmark = pytest.mark.unit


def tp(topic: str, partition: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition)


# Kafka's own murmur2 test vectors (org.apache.kafka.common.utils.UtilsTest), as unsigned ints.
@pytest.mark.parametrize(
    ("key", "signed"),
    [("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536)],
)
def test_partition_of_is_the_java_clients_default_partition(key: str, signed: int) -> None:
    for count in (1, 6, 7, 64):
        assert partition_of(key, count) == (signed & 0x7FFFFFFF) % count


def test_an_account_is_owned_only_when_both_of_its_partitions_are_assigned() -> None:
    ownership = Ownership("cmds", "legs")
    p = partition_of("acc-1", 6)
    q = (p + 1) % 6
    ownership.update([tp("cmds", p), tp("legs", p), tp("cmds", q)], 6)
    assert ownership("acc-1")
    assert not any(ownership(a) for a in ("x", "y", "z", "w") if partition_of(a, 6) == q)
    ownership.update([tp("cmds", p)], 6)
    assert not ownership("acc-1")


def test_nothing_is_owned_before_the_partition_count_is_known() -> None:
    ownership = Ownership("cmds", "legs")
    assert not ownership("acc-1")
    ownership.update([tp("cmds", 0), tp("legs", 0)], 0)
    assert not ownership("acc-1")
