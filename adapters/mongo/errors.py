"""Translate PyMongo's errors into Herald's storage errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo import errors as mongo_errors

from domain.ports import StoreError, StoreUnavailable

_UNAVAILABLE = (
    # ConnectionFailure covers AutoReconnect, NetworkTimeout, ServerSelectionTimeout
    mongo_errors.ConnectionFailure,
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Re-raise driver failures as StoreUnavailable / StoreError."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(str(exc)) from exc
    except mongo_errors.PyMongoError as exc:
        if isinstance(exc, mongo_errors.DuplicateKeyError):
            raise
        raise StoreError(str(exc)) from exc
