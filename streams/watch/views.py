"""The watch's HTTP answers: live volumes, latest alerts, as JSON (contract §16)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from handlers.velocity import Velocity
from handlers.volumes import Volume, since, totals
from streams.watch.messages import alert_id, velocity_exceeded
from streams.watch.reading import moment
from streams.watch.tables import Shelf, bucket_of

MAX_MINUTES = 60  # volumes are kept this long (by event time), so no longer can be asked


def volumes(
    shelf: Shelf[Volume], partitions: Collection[int], now: int, minutes: int
) -> dict[str, Any]:
    found = ((bucket_of(name), volume) for _, name, volume in shelf.items(partitions))
    rows = totals(found, since(now, minutes))
    return {
        "minutes": minutes,
        "partitions": sorted(partitions),
        "volumes": [
            {
                "minute": _text(bucket.minute),
                "currency": bucket.currency,
                "type": bucket.type,
                "count": volume.count,
                "amount": volume.amount,
            }
            for bucket, volume in rows
        ],
    }


def alerts(
    shelf: Shelf[Velocity], partitions: Collection[int], window_s: int, limit: int
) -> dict[str, Any]:
    found = [
        (state.alert, account)
        for _, account, state in shelf.items(partitions)
        if state.alert is not None
    ]
    found.sort(key=lambda pair: (pair[0].last_at, pair[1]), reverse=True)
    return {
        "partitions": sorted(partitions),
        "alerts": [
            {"id": alert_id(account, alert)}
            | velocity_exceeded(account, alert, window_s).model_dump(mode="json")
            for alert, account in found[:limit]
        ],
    }


def _text(at: int) -> str:
    return moment(at).isoformat().replace("+00:00", "Z")
