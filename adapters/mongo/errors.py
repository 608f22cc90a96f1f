"""Translate PyMongo's errors into Herald's storage errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from domain.ports import DuplicateKey, StoreError, StoreRefused, StoreUnavailable

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
_DUPLICATE_KEY_CODE = 11000
# Labels the server puts on errors worth retrying as they are.
_TRANSIENT_LABELS = ("TransientTransactionError", "RetryableWriteError")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Re-raise driver failures as Herald's store errors — the one place they are
    classified: DuplicateKey (a unique key already stored: the caller decides
    what that means), StoreUnavailable (transient: retry), StoreRefused
    (permanent: park the record), StoreError (anything else the driver reports)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc
    except _REFUSED as exc:
        raise StoreRefused(f"{type(exc).__name__}: {exc}") from exc
    except mongo_errors.PyMongoError as exc:
        duplicate = duplicate_key(exc)
        if duplicate is not None:
            raise duplicate from exc
        if any(exc.has_error_label(label) for label in _TRANSIENT_LABELS):
            raise StoreUnavailable(str(exc)) from exc
        raise StoreError(str(exc)) from exc


def duplicate_key(exc: mongo_errors.PyMongoError) -> DuplicateKey | None:
    """`exc` as a DuplicateKey when it reports only duplicate keys (one write,
    or every write of a bulk), else None."""
    details: Any = getattr(exc, "details", None) or {}
    if isinstance(exc, mongo_errors.DuplicateKeyError):
        return DuplicateKey(str(exc), details.get("keyValue"))
    if isinstance(exc, mongo_errors.BulkWriteError):
        errors = details.get("writeErrors") or []
        if errors and all(e.get("code") == _DUPLICATE_KEY_CODE for e in errors):
            written = int(details.get("nInserted") or 0)
            return DuplicateKey(str(exc), errors[0].get("keyValue"), written=written)
    return None
