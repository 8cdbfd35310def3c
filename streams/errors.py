"""Tally's exceptions: one root, and the line between an outage and a defect."""

from __future__ import annotations


class TallyError(Exception):
    """Root of Tally's own exceptions."""


class OutageError(TallyError):
    """Something Tally depends on does not answer (a JWKS endpoint, say): pause and retry,
    never a verdict and never a dead letter (contract §8.5)."""


def is_outage(error: BaseException) -> bool:
    """Whether `error` says something Tally depends on is not answering (pause and retry)
    rather than that processing these records failed (a defect, or a record refused).

    Kafka errors count as outages, except the broker refusing one record for its size;
    MongoDB errors only when the driver says the connection or the server's state is at
    fault. When unsure, it is a defect: the records are isolated, and each one is only
    dead-lettered after the database and the broker have answered (streams.isolate)."""
    # Imported here, not at the top: settings and the CLI's light commands (`tally token`)
    # raise TallyErrors too, and should not load the Kafka and MongoDB drivers to do so.
    from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
    from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, WriteConcernError

    if isinstance(error, OutageError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, KafkaError):
        return not isinstance(error, MessageSizeTooLargeError | RecordTooLargeError)
    if isinstance(error, ConnectionFailure | WriteConcernError):
        return True
    if isinstance(error, OperationFailure) and error.code in _MONGO_UNAVAILABLE:
        return True
    return isinstance(error, PyMongoError) and error.has_error_label("RetryableWriteError")


# Server codes of a MongoDB that is shutting down, stepping down or not reachable from itself.
_MONGO_UNAVAILABLE = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
