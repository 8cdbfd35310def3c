"""Prometheus metrics of contract §10a (prometheus-client's default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streams import __version__

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

COMMANDS = Counter("tally_commands", "Commands decided", ["type", "outcome"])
REJECTIONS = Counter("tally_rejections", "Commands rejected, by reason", ["reason"])
DLQ = Counter("tally_dlq", "Records sent to the dead-letter topic, by reason", ["reason"])
PROCESSING_SECONDS = Histogram(
    "tally_processing_seconds", "Record fetched to outcome published", buckets=_LATENCY
)
END_TO_END_SECONDS = Histogram(
    "tally_end_to_end_seconds", "Command record timestamp to outcome published", buckets=_LATENCY
)
CONSUMER_LAG = Gauge("tally_consumer_lag", "Records behind the log end", ["topic", "partition"])
BATCH_SIZE = Histogram(
    "tally_batch_size",
    "Records per processed batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
MONGO_SECONDS = Histogram(
    "tally_mongo_seconds", "MongoDB operation latency", ["operation"], buckets=_LATENCY
)
MONGO_WRITES = Counter(
    "tally_mongo_writes",
    "Documents sent to MongoDB for writing, by operation and kind (insert|update)",
    ["operation", "kind"],
)
BATCH_STAGE_SECONDS = Histogram(
    "tally_batch_stage_seconds",
    "Time a batch spends in each stage (decode, load, decide, accounts, effects, publish, commit)",
    ["stage"],
    buckets=_LATENCY,
)
BUILD_INFO = Gauge("tally_build_info", "Build information", ["version"])
READY = Gauge("tally_ready", "1 while /readyz answers 200, else 0")
BUILD_INFO.labels(__version__).set(1)
RETRIES = Counter("tally_batch_retries", "Batches retried after a transient failure", ["error"])
DUPLICATES = Counter("tally_duplicates", "Messages already decided (redelivery or duplicate send)")
API_REQUESTS = Counter(
    "tally_api_requests", "Requests answered by tally api", ["route", "method", "status"]
)
API_REQUEST_SECONDS = Histogram(
    "tally_api_request_seconds", "Time tally api took to answer", ["route"], buckets=_LATENCY
)
WATCH_ALERTS = Counter(
    "tally_watch_alerts", "Velocity alerts published by tally watch (contract §16)"
)
WATCH_EVENTS = Counter("tally_watch_events", "Records of ledger.events tally watch applied")
WATCH_LAG = Gauge(
    "tally_watch_lag",
    "Records of ledger.events tally watch has yet to process",
    ["topic", "partition"],
)
