"""Translate PyMongo's errors into Herald's storage errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from domain.ports import StoreError, StoreRefused, StoreUnavailable

_UNAVAILABLE = (
    # ConnectionFailure covers AutoReconnect, NetworkTimeout, ServerSelectionTimeout
    mongo_errors.ConnectionFailure,
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
)
# What the store will never take as it is: encoding fails before anything is
# sent (a number over 8 bytes raises OverflowError, a key or type BSON cannot
# carry InvalidDocument, a document over 16 MiB DocumentTooLarge, a subclass).
_REFUSED = (OverflowError, InvalidDocument)
# Labels the server puts on errors worth retrying as they are.
_TRANSIENT_LABELS = ("TransientTransactionError", "RetryableWriteError")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Re-raise driver failures as Herald's store errors — the one place they are
    classified: StoreUnavailable (transient: retry), StoreRefused (permanent:
    park the record), StoreError (anything else the driver reports)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc
    except _REFUSED as exc:
        raise StoreRefused(f"{type(exc).__name__}: {exc}") from exc
    except mongo_errors.PyMongoError as exc:
        if isinstance(exc, mongo_errors.DuplicateKeyError):
            raise
        if any(exc.has_error_label(label) for label in _TRANSIENT_LABELS):
            raise StoreUnavailable(str(exc)) from exc
        raise StoreError(str(exc)) from exc
