"""What a flushed batch sends, and what it counts: outcomes, signed legs, dead letters, metrics."""

from __future__ import annotations

import time
from typing import Any

from models.commands import COMMAND_MODELS
from models.ids import LEG_TYPE, leg_inbox_id, leg_message_id
from streams import metrics
from streams.batch import Plan
from streams.codec import binary_headers
from streams.intake import DeadItem, leg_value
from streams.legs import MAC_HEADER, sign_leg
from streams.publish import Message, dead_letter, outcome_message
from streams.settings import Settings

Doc = dict[str, Any]
UNKNOWN_TYPE = "unknown"  # the `type` label of commands whose type Tally does not know


class Outbound:
    """The messages of a decided batch, in the order they are published."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._leg_key = settings.leg_key  # signs every leg this worker sends (ADR 6)

    def messages(self, plan: Plan, dead: list[DeadItem]) -> list[Message]:
        s = self._settings
        messages: list[Message] = []
        flushed = {r.id for r in plan.flush}
        for record in [*plan.flush, *plan.republish]:
            if record.outcome:
                messages.append(outcome_message(s.topic_events, record.outcome))
            leg = record.leg
            # A leg settled in this very flush (local settlement) needs no message.
            if leg and leg_inbox_id(leg["command_id"], leg["leg"]) not in flushed:
                messages.append(self.leg_message(leg))
        # decoded as dead letters, and legs of no debit in flight (untrusted_leg)
        dead_letters = [*dead, *plan.dead]
        messages += [dead_letter(s.topic_dlq, d.record, d.reason, d.detail) for d in dead_letters]
        return messages

    def leg_message(self, leg: Doc) -> Message:
        account = leg["to_account"] if leg["leg"] == "credit" else leg["from_account"]
        headers = binary_headers(
            {
                "id": leg_message_id(leg["command_id"], leg["leg"]),
                "source": self._settings.event_source,
                "type": LEG_TYPE,
                "subject": account,
            }
        )
        value = leg_value(leg)
        # Only a holder of the leg key can make a leg that moves money (contract §8.8, ADR 6).
        headers.append((MAC_HEADER, sign_leg(self._leg_key, value)))
        return Message(self._settings.topic_transfers, account.encode(), value, headers)


def observe(plan: Plan, dead: list[DeadItem], fetched_at: float, size: int) -> None:
    """The metrics of a flushed batch (contract §10a)."""
    done = time.time()
    metrics.BATCH_SIZE.observe(size)
    for command_type, verdict in plan.accepted:
        outcome = "accepted" if verdict == "accepted" else "rejected"
        # `type` is the producer's text: a label per unknown value would let anyone grow the
        # metric without end, so every type Tally does not know counts as one.
        label = command_type if command_type in COMMAND_MODELS else UNKNOWN_TYPE
        metrics.COMMANDS.labels(label, outcome).inc()
        if outcome == "rejected":
            metrics.REJECTIONS.labels(verdict).inc()
    for stamp in plan.timestamps:
        metrics.PROCESSING_SECONDS.observe(done - fetched_at)
        metrics.END_TO_END_SECONDS.observe(max(0.0, done - stamp / 1000))
    for item in [*dead, *plan.dead]:
        metrics.DLQ.labels(item.reason).inc()
    metrics.DUPLICATES.inc(len(plan.republish))
