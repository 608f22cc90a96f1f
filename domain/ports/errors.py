"""Errors adapters translate their drivers' failures into, and which of them a retry may cure."""

from __future__ import annotations

from collections.abc import Mapping


class StoreError(Exception):
    """Base of storage failures, modelled on PEP 249's hierarchy."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time (retry later)."""


class StoreRefused(StoreError):
    """The store will never accept this write as it is (a document too large, a
    number it cannot represent): retrying cannot help; park the record."""


class DuplicateKey(StoreError):
    """A write met a record already stored under one of its unique keys.

    `key` names the key's fields and values as the store reported them (empty
    when it did not say; of a batch, the first duplicate's). Adapters raise it
    for every duplicate, so "already there" is told apart from failure in one
    place (the Mongo adapters' `translated()`); callers decide what it means.
    """

    def __init__(
        self, message: str, key: Mapping[str, object] | None = None, *, written: int = 0
    ) -> None:
        super().__init__(message)
        self.key: Mapping[str, object] = dict(key or {})
        # of a batch written unordered: how many records were stored all the same
        self.written = written


class ConcurrencyError(StoreError):
    """Another writer stored the same aggregate version first."""


class UniqueKeyTaken(StoreError):
    """A unique reservation (e.g. an official reference) is held by another aggregate."""

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"{namespace} {key!r} is already taken")
        self.namespace = namespace
        self.key = key


class PublishError(Exception):
    """The event log did not accept the events (broker down, timeout…)."""


class PublishRefused(PublishError):
    """The broker refuses some records for good (too large, invalid): `refused`
    maps each such event id to the reason. The others were published."""

    def __init__(self, refused: Mapping[str, str]) -> None:
        super().__init__(f"{len(refused)} record(s) refused: {next(iter(refused.values()), '')}")
        self.refused = dict(refused)


def is_transient(error: BaseException) -> bool:
    """True for a failure that retrying the same work may cure (the store or the
    broker unreachable or slow); False for one the work itself causes, which
    must be parked rather than retried for ever. Adapters classify their
    drivers' errors into these port errors (adapters/*/errors)."""
    if isinstance(error, PublishRefused | StoreRefused):
        return False
    return isinstance(error, StoreUnavailable | PublishError | TimeoutError | ConnectionError)
