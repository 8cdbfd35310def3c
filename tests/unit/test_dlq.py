"""Dead letters selected, listed and turned back into the records they were. No Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.dlq import DeadLetter, Replayed, Selection, listing, replay, replay_message

pytestmark = pytest.mark.unit


def letter(
    partition: int = 0, offset: int = 7, reason: str = "too_large", **extra: bytes
) -> DeadLetter:
    headers = [
        ("ce_id", b"cmd-1"),
        ("ce_authtoken", b"secret.jwt.token"),
        ("tally_error_reason", reason.encode()),
        ("tally_error_detail", b"record is 70000 bytes"),
        ("tally_original_topic", b"ledger.commands"),
        ("tally_original_partition", b"3"),
        ("tally_original_offset", b"41"),
        ("tally_failed_at", b"2026-12-07T08:00:00+00:00"),
        *extra.items(),
    ]
    return DeadLetter(partition, offset, 1_796_630_400_000, b"acc-1", b"{}", tuple(headers))


def test_a_replayed_letter_goes_back_as_it_came_without_tallys_headers() -> None:
    message = replay_message(letter(partition=2, offset=9))
    assert message is not None
    assert message.topic == "ledger.commands" and message.key == b"acc-1" and message.value == b"{}"
    assert message.headers == [
        ("ce_id", b"cmd-1"),
        ("ce_authtoken", b"secret.jwt.token"),
        ("tally_replayed_from", b"2:9"),
    ]


def test_a_letter_that_does_not_say_where_it_came_from_is_not_replayed() -> None:
    stray = DeadLetter(0, 1, 0, None, b"x", (("tally_error_reason", b"undecodable"),))
    assert replay_message(stray) is None


@pytest.mark.parametrize(
    ("selection", "admitted"),
    [
        (Selection(), True),
        (Selection(reason="too_large"), True),
        (Selection(reason="undecodable"), False),
        (Selection(positions=frozenset({"7"})), True),
        (Selection(positions=frozenset({"0:7"})), True),
        (Selection(positions=frozenset({"1:7"})), False),
        (Selection(since=datetime(2026, 12, 7, 7, tzinfo=UTC)), True),
        (Selection(since=datetime(2026, 12, 7, 9, tzinfo=UTC)), False),
    ],
)
def test_a_selection_admits_by_reason_position_and_time(
    selection: Selection, admitted: bool
) -> None:
    assert selection.admits(letter()) is admitted


def test_a_listing_shows_position_time_reason_key_and_detail_never_a_token() -> None:
    (line,) = listing([letter()])
    assert line.split()[:3] == ["0:7", "2026-12-07T08:00:00Z", "too_large"]
    assert "key=acc-1" in line and "record is 70000 bytes" in line
    assert "secret" not in line


async def test_a_replay_sends_in_chunks_reports_progress_and_counts_what_it_skipped() -> None:
    sent: list[int] = []
    progress: list[tuple[int, int]] = []

    async def send(messages: object) -> None:
        sent.append(len(messages))  # type: ignore[arg-type]

    stray = DeadLetter(0, 1, 0, None, b"x", ())
    letters = [letter(offset=i) for i in range(5)] + [stray]
    done = await replay(letters, send, chunk=2, progress=lambda d, t: progress.append((d, t)))
    assert sent == [2, 2, 1] and progress == [(2, 5), (4, 5), (5, 5)]
    assert (done.sent, done.skipped) == (5, 1)
    assert done.summary(dry_run=False) == (
        "replayed 5 dead letters, 1 without an original topic skipped"
    )
    assert Replayed(sent=1).summary(dry_run=True) == "would replay 1 dead letter"
