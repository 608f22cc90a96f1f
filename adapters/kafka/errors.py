"""Classify aiokafka's errors: the one place that says which broker failures
are about a record (permanent: park it) and which about the broker (retry)."""

from __future__ import annotations

from aiokafka import errors as kafka_errors

# The broker (or the producer's own size check) refuses this record as it is:
# sending it again can never succeed.
_RECORD_REFUSED: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError,  # over max.request.size / max.message.bytes
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidMessageError,  # INVALID_RECORD and friends
    kafka_errors.InvalidTimestampError,
    kafka_errors.UnsupportedForMessageFormatError,
)


def refuses_record(error: BaseException) -> bool:
    """True when `error` says this record will never be accepted."""
    return isinstance(error, _RECORD_REFUSED)
